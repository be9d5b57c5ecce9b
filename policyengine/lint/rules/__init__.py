"""The lint rules: one module per rule (RULE: RuleInfo, check(ctx) -> findings), listed here explicitly.

Each rule also has a test (tests/lint/rules/test_<module>.py), an annotated fixture
(tests/lint/fixtures/<rule-id>.policy) and a doc page (docs/lint/rules/<rule-id>.md); tests/lint/test_meta.py
checks that all four exist for every rule listed here."""

RULE_MODULES: tuple[str, ...] = (
    "compile_error",
    "unused_block",
    "duplicate_example",
    "rule_never_fires",
    "override_never_applies",
    "missing_message",
    "unpinned_model",
    "regex_redos",
    "regex_matches_empty",
    "regex_bare_substring",
    "invalid_regex_flag",
    "counter_matches_concept",
    "example_near_foreign_counter",
    "threshold_matches_benign",
    "concept_too_narrow",
    "missing_test",
    "suspicious_unicode",
    "bad_suppression",
    "regex_slow_path",
    "evadable_pattern",
    "training_data",
)
