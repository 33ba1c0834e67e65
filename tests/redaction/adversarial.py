"""An adversarial corpus for the field table: one value per kind, put in every carrier field of
requests and answers of the three endpoints (chat, responses, embeddings), and look-alikes that
must stay untouched. Beside the generated corpus in ``tests/data/`` (common formats), this one
is about *where* a value hides, not how it is spelled.

``needles`` are what must never be seen (the value, and its spellings without separators);
``own`` values are the caller's, sent in the prompt, that the model's answer repeats as
placeholders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson


@dataclass(frozen=True)
class Kind:
    entity: str
    value: str
    #: The caller's own value of this kind (sent in the prompt, placeholder in the answer).
    own: str
    extra_needles: tuple[str, ...] = ()

    @property
    def needles(self) -> tuple[str, ...]:
        """The value, its spellings without separators, and its percent-encoded form."""
        return (self.value, *self.extra_needles, quote(self.value, safe=""))


KINDS = [
    Kind("EMAIL_ADDRESS", "mallory.roe@example.org", "jane.caller@example.com"),
    Kind("PHONE_NUMBER", "+1 415 555 2671", "+44 20 7946 0958", ("415 555 2671",)),
    Kind("CREDIT_CARD", "5555 5555 5555 4444", "4111 1111 1111 1111", ("5555555555554444",)),
    Kind(
        "IBAN_CODE", "GB82 WEST 1234 5698 7654 32", "DE89 3704 0044 0532 0130 00", ("GB82WEST12345698765432",)
    ),
    Kind("US_SSN", "536-90-4399", "078-05-1121"),
    Kind("IP_ADDRESS", "172.16.254.1", "10.20.30.40"),
    Kind(
        "OPENAI_API_KEY",
        "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
        "sk-proj-Zz9yXx8wWv7uUt6sSr5qQp4oOn3mMl2k",
    ),
    Kind("AWS_ACCESS_KEY_ID", "AKIAQ3EGUOAQZ5XJ4T7W", "AKIAZ7Y6X5W4V3U2T1SR"),
    Kind(
        "GITHUB_TOKEN", "ghp_R4nd0mT0k3nV4lu3F0rT3st1ngPurp0s3s01", "ghp_0therT0k3nV4lu3F0rT3st1ngPurp0s3s023"
    ),
    Kind(
        "JWT",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqYW5lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IiLCJpYXQiOjE1MTYyMzkwMjJ9.4pcPyMD09olPSyXnrXCjTwXyr4BsezdI1AVTmud2fU4",
    ),
    Kind(
        "SLACK_TOKEN",
        "xoxb-2417862813-2417862813123-Wq8KdN3bL5pR7tY9uX2cV4zA",
        "xoxb-1111862813-1111862813123-Ab8KdN3bL5pR7tY9uX2cV4zA",
    ),
    Kind("STRIPE_API_KEY", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_9zZ39HqLyjWDarjtT1zdp7dc"),
    Kind(
        "GOOGLE_API_KEY", "AIzaSyD3x4mpl3K3yF0rT3st1ngPurp0s3s0n1y", "AIzaSyA0th3rK3yF0rT3st1ngPurp0s3s0n1yz1"
    ),
]

#: Clean text that looks like the kinds above: must reach the provider and the client as is.
LOOKALIKES = [
    "order ORD-2024-894349 shipped",
    "card ending 4444, expiry 12/27",
    "version 4.2.1.3 and section 10.1.2.3",
    "build 2024.06.11 on host build-07",
    "sk-learn is a library, sk_test is a word",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b",
    "uuid 123e4567-e89b-12d3-a456-426614174000",
    "ticket #55512 for the 415 area",
    "user@ is not an address, nor is @example.com",
    "AKIA is a prefix; ghp_ too; xoxb- as well",
    "the placeholder <EMAIL_ADDRESS_9> is text the model wrote",
]


def q(value: str) -> str:
    """As a URL query carries it: percent-encoded (``@`` is ``%40``, a space ``%20``)."""
    return quote(value, safe="")


def chat_request(kind: Kind) -> dict[str, Any]:
    v = kind.value
    return {
        "model": "gpt-test",
        "user": f"u {v}",
        "safety_identifier": f"s {v}",
        "metadata": {"note": f"m {v}"},
        "messages": [
            {"role": "system", "content": f"system sees {v} here"},
            {
                "role": "user",
                "name": f"n {v}",
                "content": [
                    {"type": "text", "text": f"part {v} and mine {kind.own}"},
                    {
                        "type": "image_url",
                        "image_url": {"url": f"https://img.example.com/p.png?q={q(v)}&x=1"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": f"I think {v} matters",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {
                            "name": "lookup",
                            "arguments": orjson.dumps({"value": v, "note": f"see {v}"}).decode(),
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": orjson.dumps({"result": v, "n": 1}).decode()},
            {"role": "assistant", "content": f"the answer was {v}", "refusal": f"no {v}"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "description": f"looks up {v}",
                    "parameters": {
                        "type": "object",
                        "properties": {"value": {"type": "string", "description": f"like {v}", "enum": [v]}},
                    },
                },
            }
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "out",
                "description": f"about {v}",
                "schema": {"type": "object", "description": v},
            },
        },
        "stop": [f"{v}"],
        "prediction": {"type": "content", "content": f"predicted {v}"},
        "a_field_from_next_year": {"nested": [f"tomorrow {v}"]},
    }


def responses_request(kind: Kind) -> dict[str, Any]:
    v = kind.value
    return {
        "model": "gpt-test",
        "instructions": f"instructions with {v}",
        "user": f"u {v}",
        "metadata": {"note": f"m {v}"},
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": f"input {v} and mine {kind.own}"},
                    {"type": "input_image", "image_url": f"https://img.example.com/i.png?q={q(v)}"},
                ],
            },
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "lookup",
                "arguments": orjson.dumps({"v": v}).decode(),
            },
            {"type": "function_call_output", "call_id": "c1", "output": f"result {v}"},
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [{"type": "summary_text", "text": f"summary {v}"}],
            },
            {
                "type": "message",
                "role": "assistant",
                "content": [
                    {
                        "type": "output_text",
                        "text": f"before {v}",
                        "annotations": [
                            {
                                "type": "url_citation",
                                "title": v,
                                "url": "https://x.example/",
                                "start_index": 0,
                                "end_index": 1,
                            }
                        ],
                    }
                ],
            },
        ],
        "tools": [
            {
                "type": "function",
                "name": "lookup",
                "description": f"tool {v}",
                "parameters": {"type": "object", "properties": {"v": {"type": "string", "description": v}}},
            }
        ],
        "text": {
            "format": {
                "type": "json_schema",
                "name": "o",
                "description": f"fmt {v}",
                "schema": {"type": "object", "description": v},
            }
        },
        "prompt_cache_key": f"k {v}",
    }


def embeddings_requests(kind: Kind) -> list[dict[str, Any]]:
    v = kind.value
    return [
        {"model": "embed-test", "input": f"embed {v}", "user": f"u {v}"},
        {"model": "embed-test", "input": [f"one {v}", "two", f"three {v}"]},
    ]


def chat_answer(kind: Kind, placeholder: str) -> tuple[dict[str, Any], list[str]]:
    """A whole chat answer with the new value in every text field (and the caller's own value
    as its placeholder), and the text pieces a stream sends for ``content``."""
    v = kind.value
    content = f"Here: {v}. Yours: {placeholder}."
    message = {
        "role": "assistant",
        "content": content,
        "reasoning_content": f"reasoning about {v}",
        "annotations": [
            {
                "type": "url_citation",
                "url_citation": {
                    "url": f"https://docs.example.com/?q={q(v)}",
                    "title": f"doc {v}",
                    "start_index": 0,
                    "end_index": 1,
                },
            }
        ],
        "tool_calls": [
            {
                "id": "t1",
                "type": "function",
                "function": {
                    "name": "send",
                    "arguments": orjson.dumps({"new": v, "own": placeholder}).decode(),
                },
            }
        ],
    }
    tokens = [content[i : i + 3] for i in range(0, len(content), 3)]
    logprobs = {
        "content": [
            {
                "token": t,
                "logprob": -0.1,
                "bytes": list(t.encode()),
                "top_logprobs": [{"token": t, "logprob": -0.1, "bytes": list(t.encode())}],
            }
            for t in tokens
        ]
    }
    body = {
        "id": "chatcmpl-adv",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-test",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": message, "logprobs": logprobs}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
    }
    return body, tokens


def pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def chat_chunks(kind: Kind, placeholder: str, size: int = 3) -> list[dict[str, Any]]:
    """The same answer as a stream: every text split into ``size``-character deltas, logprobs
    per chunk."""
    body, _ = chat_answer(kind, placeholder)
    tokens = pieces(body["choices"][0]["message"]["content"], size)
    message = body["choices"][0]["message"]
    base = {"id": "chatcmpl-adv", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test"}

    def chunk(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> dict[str, Any]:
        return {
            **base,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": logprobs}],
        }

    out = [chunk({"role": "assistant", "content": ""})]
    for t in tokens:
        lp = {"content": [{"token": t, "logprob": -0.1, "bytes": list(t.encode()), "top_logprobs": []}]}
        out.append(chunk({"content": t}, logprobs=lp))
    r = message["reasoning_content"]
    out += [chunk({"reasoning_content": p}) for p in pieces(r, size)]
    args = message["tool_calls"][0]["function"]["arguments"]
    out.append(
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "send", "arguments": ""},
                    }
                ]
            }
        )
    )
    out += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in pieces(args, size)]
    out.append(chunk({}, "tool_calls"))
    return out


def responses_answer(kind: Kind, placeholder: str) -> dict[str, Any]:
    v = kind.value
    text = f"Here: {v}. Yours: {placeholder}."
    return {
        "id": "resp_adv",
        "object": "response",
        "created_at": 1,
        "model": "gpt-test",
        "status": "completed",
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "output": [
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [{"type": "summary_text", "text": f"summary {v}"}],
            },
            {
                "type": "message",
                "id": "m1",
                "role": "assistant",
                "status": "completed",
                "content": [
                    {
                        "type": "output_text",
                        "text": text,
                        "annotations": [
                            {
                                "type": "url_citation",
                                "title": f"doc {v}",
                                "url": "https://docs.example.com/",
                                "start_index": 0,
                                "end_index": 1,
                            }
                        ],
                        "logprobs": [
                            {"token": text[i : i + 3], "logprob": -0.1, "bytes": [], "top_logprobs": []}
                            for i in range(0, len(text), 3)
                        ],
                    }
                ],
            },
            {
                "type": "function_call",
                "id": "fc1",
                "call_id": "c9",
                "name": "send",
                "status": "completed",
                "arguments": orjson.dumps({"new": v, "own": placeholder}).decode(),
            },
            {
                "type": "code_interpreter_call",
                "id": "ci1",
                "status": "completed",
                "container_id": "cnt",
                "code": f"print('{v}')",
                "outputs": [{"type": "logs", "logs": f"printed {v}"}],
            },
        ],
        "usage": {
            "input_tokens": 5,
            "output_tokens": 5,
            "total_tokens": 10,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


def responses_events(kind: Kind, placeholder: str, size: int = 3) -> list[dict[str, Any]]:
    """The same answer as a stream of responses-API events, texts in ``size``-character deltas."""
    final = responses_answer(kind, placeholder)
    text = final["output"][1]["content"][0]["text"]
    summary = final["output"][0]["summary"][0]["text"]
    args = final["output"][2]["arguments"]
    seq = iter(range(1000))
    ev: list[dict[str, Any]] = [
        {
            "type": "response.created",
            "sequence_number": next(seq),
            "response": {**final, "status": "in_progress", "output": []},
        }
    ]
    ev.append(
        {
            "type": "response.output_item.added",
            "sequence_number": next(seq),
            "output_index": 0,
            "item": {"type": "reasoning", "id": "rs_1", "summary": []},
        }
    )
    for p in pieces(summary, size):
        ev.append(
            {
                "type": "response.reasoning_summary_text.delta",
                "sequence_number": next(seq),
                "item_id": "rs_1",
                "output_index": 0,
                "summary_index": 0,
                "delta": p,
            }
        )
    ev.append(
        {
            "type": "response.reasoning_summary_text.done",
            "sequence_number": next(seq),
            "item_id": "rs_1",
            "output_index": 0,
            "summary_index": 0,
            "text": summary,
        }
    )
    ev.append(
        {
            "type": "response.output_item.done",
            "sequence_number": next(seq),
            "output_index": 0,
            "item": final["output"][0],
        }
    )
    ev.append(
        {
            "type": "response.output_item.added",
            "sequence_number": next(seq),
            "output_index": 1,
            "item": {
                "type": "message",
                "id": "m1",
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            },
        }
    )
    for p in pieces(text, size):
        ev.append(
            {
                "type": "response.output_text.delta",
                "sequence_number": next(seq),
                "item_id": "m1",
                "output_index": 1,
                "content_index": 0,
                "delta": p,
                "logprobs": [{"token": p, "logprob": -0.1, "bytes": [], "top_logprobs": []}],
            }
        )
    ev.append(
        {
            "type": "response.output_text.annotation.added",
            "sequence_number": next(seq),
            "item_id": "m1",
            "output_index": 1,
            "content_index": 0,
            "annotation_index": 0,
            "annotation": final["output"][1]["content"][0]["annotations"][0],
        }
    )
    ev.append(
        {
            "type": "response.output_text.done",
            "sequence_number": next(seq),
            "item_id": "m1",
            "output_index": 1,
            "content_index": 0,
            "text": text,
            "logprobs": final["output"][1]["content"][0]["logprobs"],
        }
    )
    ev.append(
        {
            "type": "response.output_item.done",
            "sequence_number": next(seq),
            "output_index": 1,
            "item": final["output"][1],
        }
    )
    ev.append(
        {
            "type": "response.output_item.added",
            "sequence_number": next(seq),
            "output_index": 2,
            "item": {**final["output"][2], "arguments": "", "status": "in_progress"},
        }
    )
    for p in pieces(args, size):
        ev.append(
            {
                "type": "response.function_call_arguments.delta",
                "sequence_number": next(seq),
                "item_id": "fc1",
                "output_index": 2,
                "delta": p,
            }
        )
    ev.append(
        {
            "type": "response.function_call_arguments.done",
            "sequence_number": next(seq),
            "item_id": "fc1",
            "output_index": 2,
            "arguments": args,
        }
    )
    ev.append(
        {
            "type": "response.output_item.done",
            "sequence_number": next(seq),
            "output_index": 2,
            "item": final["output"][2],
        }
    )
    ev.append(
        {
            "type": "response.output_item.done",
            "sequence_number": next(seq),
            "output_index": 3,
            "item": final["output"][3],
        }
    )
    ev.append({"type": "response.completed", "sequence_number": next(seq), "response": final})
    return ev
