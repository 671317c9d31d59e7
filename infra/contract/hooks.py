"""Schemathesis hooks of the contract test (tests/tests/e2e/contract.rs loads this module through
SCHEMATHESIS_HOOKS).

A client of Waybill sends a fresh `Idempotency-Key` for every distinct request: a key reused with
another body is refused (422 `idempotency-key-reused`), as both documents say. No schema can state
"unique per request", and the generator hands out the same few keys ("0", "A", ...) to many
different bodies. So every generated key that is valid by the document's pattern is made unique
here, keeping it valid (a numbered suffix, the whole still 1-255 visible ASCII characters); keys
the generator made invalid on purpose (empty, too long, spaces, non-ASCII) are sent unchanged, so
the server's refusal of those is still checked.
"""

import itertools
import re

import schemathesis

_VALID = re.compile(r"[!-~]{1,255}")
_CALLS = itertools.count(1)


@schemathesis.hook
def before_call(context, case, kwargs):
    meta = getattr(case, "meta", None)
    if meta is not None and meta.generation.mode.is_negative:
        return
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() != "idempotency-key":
            continue
        key = headers[name]
        if isinstance(key, str) and _VALID.fullmatch(key):
            suffix = f"~{next(_CALLS)}"
            headers[name] = key[: 255 - len(suffix)] + suffix
