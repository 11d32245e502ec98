"""What each command needs to run: where it runs, which role its token must carry,
and which environment it reads. The last lines of every command's ``--help``."""

from __future__ import annotations

_HOST = (
    "the gateway's host, no token; reads WEIGHTGATE_HOME, WEIGHTGATE_KEYS_DIR, "
    "WEIGHTGATE_DATABASE_URL, WEIGHTGATE_STORAGE and the rest of the gateway's configuration"
)
_KEYS = "the gateway's host, no token; reads WEIGHTGATE_KEYS_DIR"


def _api(who: str, extra: str = "") -> str:
    return f"a token in WEIGHTGATE_TOKEN ({who}) and the gateway at WEIGHTGATE_URL{extra}"


_PACKS = "nothing but the packs; reads WEIGHTGATE_POLICY and WEIGHTGATE_POLICY_DIR"

NEEDS: dict[str, str] = {
    "keys init": _KEYS,
    "keys rotate": _HOST + "; WEIGHTGATE_KEYSTORE names the KEK to move to",
    "keys status": _HOST,
    "keys retire": _HOST,
    "token mint": _KEYS + " (the development issuer; local use and tests only)",
    "migrate": "the gateway's host or a deploy job, no token; reads WEIGHTGATE_HOME and "
    "WEIGHTGATE_DATABASE_URL",
    "serve": _HOST,
    "demo": "nothing: it makes its own keys and state in a temporary directory",
    "orgs add": _HOST,
    "orgs list": _HOST,
    "orgs update": _api("admin role"),
    "models publish": _HOST,
    "models list": _HOST,
    "fetch": _api("any authenticated caller", "; WEIGHTGATE_DPOP_KEY for a DPoP-bound token"),
    "keygen": "nothing: it only writes a key file",
    "decrypt": "nothing but the grant, your key and the downloaded files",
    "policy explain": _PACKS,
    "policy diff": _PACKS
    + "; with the gateway's configuration (WEIGHTGATE_HOME, WEIGHTGATE_DATABASE_URL) it also "
    "compares organisations, exemptions and recent grants",
    "policy reload": _api("admin role"),
    "grants revoke": _api("the grant's owner, or the admin role"),
    "quotas set": _api("admin role"),
    "exemptions propose": _api("admin role"),
    "exemptions approve": _api("admin role, not the proposer's"),
    "exemptions reject": _api("admin role"),
    "exemptions revoke": _api("admin role"),
    "exemptions list": _api("admin role"),
    "audit verify": _HOST,
    "audit verify-receipt": "nothing but the receipt, the entry's bytes and the log's public key",
    "gc": _HOST,
    "audit prove": _HOST,
    "audit public-key": _KEYS,
    "audit query": _HOST + "; with --remote instead " + _api("security or admin role"),
    "audit witness-key": "nothing: it writes the witness's key and prints its public half",
    "audit witness": _api("security or admin role") + " (only to post its cosignature)",
}
