"""Independent copy of the January 2025 tier lists, for checking the shipped pack against.

Copied by hand from the January 2025 rule's country lists (249 ISO 3166-1
codes with their tier), independently of the pack: this module is the second
implementation that the pack must agree with, so a slip in the pack (a dropped
or misspelt member, a wrong ``until``) shows up as a mismatch here rather than
being copied into the expectation.

Every ISO code in neither set is Tier 2 ("all other countries").
"""

from __future__ import annotations

from datetime import date

# Tier 1: the United States and 18 allies of Supp. No. 5 to Part 740, paragraph (a),
# plus the six US territories the reference treats as "United States" (AS, GU, MP,
# PR, UM, VI; marked UNCONFIRMED there, but Tier 1 in the CSV).
TIER1 = frozenset(
    {
        "AS", "AU", "BE", "CA", "DE", "DK", "ES", "FI", "FR", "GB", "GU", "IE", "IT",
        "JP", "KR", "MP", "NL", "NO", "NZ", "PR", "SE", "TW", "UM", "US", "VI",
    }
)  # fmt: skip

# Tier 3 as of January 2025: Country Group D:5 (23 countries, Cambodia included),
# Macau (named by the rule beside D:5) and Hong Kong (the EAR treats it as China).
TIER3_JAN_2025 = frozenset(
    {
        "AF", "BY", "CD", "CF", "CN", "CU", "ER", "HK", "HT", "IQ", "IR", "KH", "KP",
        "LB", "LY", "MM", "MO", "NI", "RU", "SD", "SO", "SS", "SY", "VE", "ZW",
    }
)  # fmt: skip

# Cambodia left D:5 under the EAR when BIS's conforming rule took effect on this
# day (the reference cites Fenwick); from then on it is Tier 2.
CAMBODIA_LEFT_D5 = date(2026, 2, 3)

ISO_CODE_COUNT = 249


def tier3_on(day: date) -> frozenset[str]:
    """The Tier 3 set on ``day``, following the one dated change the reference records."""
    return TIER3_JAN_2025 - {"KH"} if day >= CAMBODIA_LEFT_D5 else TIER3_JAN_2025


def expected_tier(code: str, day: date) -> int:
    if code in TIER1:
        return 1
    if code in tier3_on(day):
        return 3
    return 2
