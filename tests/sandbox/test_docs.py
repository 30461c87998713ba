"""sandbox/README.md stays in step with the rules and readable from any checkout."""

from pathlib import Path

from sandbox import rules

README = (Path(__file__).resolve().parents[2] / "sandbox" / "README.md").read_text()


def test_every_magic_prefix_is_documented():
    for prefix in (*rules.MAGIC_PREFIXES, *rules.ELIGIBILITY_PREFIXES):
        assert f"`{prefix}" in README, prefix


def test_the_contract_is_named_relative_to_the_checkout():
    assert "../shared/volteras/" in README
    assert "/work/" not in README
