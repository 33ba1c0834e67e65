"""A small labelled set for the semantic cache: pairs that should share an answer, and
near-duplicates with a different intent that must not.

Written for this gateway's traffic (agents' planning and lookup questions, user questions):
``HIT`` pairs are paraphrases (same intent, other words, case, punctuation); ``MISS`` pairs
differ in one word or value that changes the answer (an antonym, another entity, another
number, another placeholder). Used by the semantic tests (tests/cache/test_cache_semantic.py),
the candidate measurement (bench/semantic_models.py) and the bench (bench/cache.py).

``MISS_GUARDED`` are near-duplicates that differ only in a number or a placeholder, or in
word order: those miss whatever the embedding says (the numbers and placeholders of the last
turn are part of the context hash; a reordering is refused, gateway/cache/semantic.py). The other ``MISS`` pairs must be told apart by
the embedding itself, which is where the threshold comes from.
"""

from __future__ import annotations

HIT: tuple[tuple[str, str], ...] = (
    ("What is the capital of France?", "Which city is the capital of France?"),
    ("How do I reverse a list in Python?", "What's the way to reverse a list in Python?"),
    ("Summarize the plot of Hamlet.", "Give me a summary of the plot of Hamlet."),
    ("How can I reset my password?", "How do I reset my password?"),
    ("What time zone is Tokyo in?", "Which time zone does Tokyo use?"),
    ("Explain what a hash table is.", "Can you explain what a hash table is?"),
    ("List the planets in the solar system.", "Name the planets of the solar system."),
    ("Translate 'good morning' into Spanish.", "How do you say 'good morning' in Spanish?"),
    ("What are the symptoms of dehydration?", "What symptoms does dehydration cause?"),
    ("Write a haiku about autumn.", "Compose a haiku about autumn."),
    ("How do I install numpy?", "How can I install numpy?"),
    ("What does HTTP status 404 mean?", "What is the meaning of HTTP status code 404?"),
    ("Who wrote Pride and Prejudice?", "Who is the author of Pride and Prejudice?"),
    (
        "How do I convert a string to uppercase in JavaScript?",
        "How can I make a string uppercase in JavaScript?",
    ),
    (
        "What is the boiling point of water at sea level?",
        "At sea level, what temperature does water boil at?",
    ),
    (
        "Plan the steps to deploy the billing service to staging.",
        "Outline the steps for deploying the billing service to staging.",
    ),
    (
        "Find the open pull requests in the billing repository.",
        "Look up the open pull requests in the billing repository.",
    ),
    ("What is the difference between TCP and UDP?", "How does TCP differ from UDP?"),
    ("Give me three tips for better sleep.", "Share three tips for sleeping better."),
    ("How do I exit vim?", "How can I quit vim?"),
    ("what is the capital of france", "What is the capital of France?"),
    ("Send the weekly report to <EMAIL_ADDRESS_1>.", "Please send the weekly report to <EMAIL_ADDRESS_1>."),
    ("Show the top 5 customers by revenue.", "List the top 5 customers by revenue."),
    ("What is the population of Canada?", "How many people live in Canada?"),
    ("Recommend a good book about habits.", "Can you recommend a good book on habits?"),
    ("How do I create a virtual environment in Python?", "How can I create a Python virtual environment?"),
    ("Check the status of order 1042.", "What is the status of order 1042?"),
    ("Define photosynthesis.", "What is photosynthesis?"),
)

#: Differ only in a number or a placeholder: guarded by the context hash.
MISS_GUARDED: tuple[tuple[str, str], ...] = (
    ("Show the top 5 customers by revenue.", "Show the top 10 customers by revenue."),
    ("What happened in 1914?", "What happened in 1918?"),
    ("Send the weekly report to <EMAIL_ADDRESS_1>.", "Send the weekly report to <EMAIL_ADDRESS_2>."),
    ("Check the status of order 1042.", "Check the status of order 1043."),
    ("Convert 100 USD to EUR.", "Convert 250 USD to EUR."),
    # The same words in another order (0.99 similar): refused by the word-order guard.
    ("Convert USD to EUR.", "Convert EUR to USD."),
)

#: Near-duplicates with another intent that the embedding itself must tell apart.
MISS: tuple[tuple[str, str], ...] = (
    ("How do I add a user to the admin group?", "How do I remove a user from the admin group?"),
    ("What is the capital of France?", "What is the capital of Germany?"),
    ("Translate 'good morning' into Spanish.", "Translate 'good morning' into French."),
    ("Write a haiku about autumn.", "Write a haiku about spring."),
    ("How do I reverse a list in Python?", "How do I sort a list in Python?"),
    ("Summarize the plot of Hamlet.", "Summarize the plot of Macbeth."),
    ("How do I install numpy?", "How do I uninstall numpy?"),
    ("Who wrote Pride and Prejudice?", "Who wrote Sense and Sensibility?"),
    (
        "How do I convert a string to uppercase in JavaScript?",
        "How do I convert a string to lowercase in JavaScript?",
    ),
    ("What is the boiling point of water?", "What is the freezing point of water?"),
    ("Deploy the billing service to staging.", "Deploy the billing service to production."),
    ("Enable two-factor authentication for my account.", "Disable two-factor authentication for my account."),
    ("What is the time complexity of quicksort?", "What is the space complexity of quicksort?"),
    ("Delete the staging database.", "Back up the staging database."),
    ("Should I buy this stock?", "Should I sell this stock?"),
    ("Is it safe to take ibuprofen with alcohol?", "Is it safe to take ibuprofen with paracetamol?"),
    ("What are the symptoms of dehydration?", "What are the causes of dehydration?"),
    ("Explain what a hash table is.", "Explain what a binary tree is."),
    ("What time zone is Tokyo in?", "What time zone is Sydney in?"),
)
