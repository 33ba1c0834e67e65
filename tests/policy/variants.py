"""Spellings an agent can use to walk around a rule: of tool names and of injection markers.

Shared by the key tests (test_policy_textkey.py) and the evasion suite over HTTP
(test_policy_evasion.py), so both try the same attacks. ``name_variants`` and
``text_variants`` are hypothesis strategies that combine them.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import strategies as st

#: TR39 look-alikes of Latin letters (confusables.txt), per script.
LOOK_ALIKES = {
    "cyrillic": {
        "a": "\u0430",
        "c": "\u0441",
        "d": "\u0501",
        "e": "\u0435",
        "h": "\u04bb",
        "i": "\u0456",
        "j": "\u0458",
        "l": "\u04cf",
        "o": "\u043e",
        "p": "\u0440",
        "q": "\u051b",
        "s": "\u0455",
        "x": "\u0445",
        "y": "\u0443",
    },
    "greek": {
        "a": "\u03b1",
        "i": "\u03b9",
        "n": "\u03b7",
        "o": "\u03bf",
        "p": "\u03c1",
        "u": "\u03c5",
        "v": "\u03bd",
    },
    "armenian": {"n": "\u0578", "u": "\u057d", "o": "\u0585", "h": "\u0570", "g": "\u0581", "q": "\u0566"},
    # capitals that look like Latin capitals
    "cyrillic_upper": {
        "A": "\u0410",
        "B": "\u0412",
        "C": "\u0421",
        "E": "\u0415",
        "H": "\u041d",
        "I": "\u0406",
        "J": "\u0408",
        "K": "\u041a",
        "M": "\u041c",
        "O": "\u041e",
        "P": "\u0420",
        "S": "\u0405",
        "T": "\u0422",
        "X": "\u0425",
        "Y": "\u04ae",
    },
    "greek_upper": {
        "A": "\u0391",
        "B": "\u0392",
        "E": "\u0395",
        "H": "\u0397",
        "I": "\u0399",
        "K": "\u039a",
        "M": "\u039c",
        "N": "\u039d",
        "O": "\u039f",
        "P": "\u03a1",
        "T": "\u03a4",
        "X": "\u03a7",
        "Y": "\u03a5",
        "Z": "\u0396",
    },
}
INVISIBLE = (
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\u00ad",
    "\u180e",
    "\u034f",
    "\ufe0f",
    "\U000e0041",
    "\u202e",
)


def look_alike(text: str, script: str) -> str:
    table = LOOK_ALIKES[script]
    return "".join(table.get(c, c) for c in text)


def fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def math_bold(text: str) -> str:
    return "".join(chr(0x1D41A + ord(c) - 97) if "a" <= c <= "z" else c for c in text)


def interleave(text: str, sep: str) -> str:
    return sep.join(text)


#: (variant, spelling) of a tool name; each keys to the name itself.
NAME_VARIANTS: list[tuple[str, Callable[[str], str]]] = [
    ("title_case", lambda n: "_".join(w.title() for w in n.split("_"))),
    ("upper_case", str.upper),
    ("trailing_space", lambda n: n + " "),
    ("leading_tab", lambda n: "\t" + n),
    ("zero_width_space", lambda n: interleave(n, "\u200b")),
    ("zero_width_joiner", lambda n: n[:2] + "\u200d" + n[2:]),
    ("soft_hyphen", lambda n: n[:3] + "\u00ad" + n[3:]),
    ("word_joiner_bom", lambda n: "\ufeff" + n + "\u2060"),
    ("cyrillic", lambda n: look_alike(n, "cyrillic")),
    ("greek", lambda n: look_alike(n, "greek")),
    ("armenian", lambda n: look_alike(n, "armenian")),
    ("cyrillic_upper", lambda n: look_alike(n.upper(), "cyrillic_upper")),
    ("greek_upper", lambda n: look_alike(n.upper(), "greek_upper")),
    ("fullwidth", fullwidth),
    ("math_bold", math_bold),
    ("mixed", lambda n: fullwidth(n[:2]) + look_alike(n[2:].upper(), "cyrillic_upper") + "\u200b "),
]

#: (variant, spelling) of an injection marker; each keys to a text holding the marker.
MARKER_VARIANTS: list[tuple[str, Callable[[str], str]]] = [
    ("upper_case", str.upper),
    ("double_spaces", lambda m: m.replace(" ", "  ")),
    ("newlines", lambda m: m.replace(" ", "\n")),
    ("tabs", lambda m: m.replace(" ", "\t")),
    ("crlf", lambda m: m.replace(" ", " \r\n ")),
    ("nbsp", lambda m: m.replace(" ", "\u00a0")),
    ("ideographic_space", lambda m: m.replace(" ", "\u3000")),
    ("zero_width", lambda m: interleave(m, "\u200b")),
    ("soft_hyphen", lambda m: m.replace("vious", "vi\u00adous").replace("ore", "o\u00adre")),
    ("fullwidth", fullwidth),
    ("cyrillic", lambda m: look_alike(m, "cyrillic")),
    ("greek", lambda m: look_alike(m, "greek")),
    ("mixed", lambda m: fullwidth(m[:6]) + look_alike(m[6:], "cyrillic").replace(" ", "\u00a0\u200b\n")),
]


@st.composite
def name_variants(draw: st.DrawFn, name: str) -> tuple[str, str]:
    """(name, a spelling of it): per character, maybe a look-alike, fullwidth, upper case,
    with invisible characters between, and whitespace around."""
    out = []
    for c in name:
        form = draw(
            st.sampled_from(
                [
                    "plain",
                    "upper",
                    "fullwidth",
                    "cyrillic",
                    "greek",
                    "armenian",
                    "cyrillic_upper",
                    "greek_upper",
                ]
            )
        )
        if form == "upper":
            c = c.upper()
        elif form.endswith("_upper"):
            c = LOOK_ALIKES[form].get(c.upper(), c)
        elif form == "fullwidth":
            c = fullwidth(c)
        elif form in LOOK_ALIKES:
            c = LOOK_ALIKES[form].get(c, c)
        out.append(c + draw(st.sampled_from(["", "", *INVISIBLE])))
    around = draw(st.sampled_from(["", " ", "\t", "\u00a0", "\u3000"]))
    return name, around + "".join(out) + around


@st.composite
def text_variants(draw: st.DrawFn, marker: str) -> str:
    """A text holding ``marker`` spelled with look-alikes, case, invisible characters and any
    whitespace runs between its words."""
    words = []
    for word in marker.split(" "):
        _, spelled = draw(name_variants(word))
        words.append(spelled.strip())
    gaps = [
        draw(st.sampled_from([" ", "  ", "\n", "\t", "\u00a0", " \u200b ", "\r\n", "\u2003"]))
        for _ in words[1:]
    ]
    body = words[0] + "".join(g + w for g, w in zip(gaps, words[1:], strict=True))
    return draw(st.sampled_from(["", "Note: ", "ok\n"])) + body + draw(st.sampled_from(["", ".", " now"]))
