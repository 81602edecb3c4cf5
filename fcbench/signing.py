"""FC 3.0's request signature (ACS3-HMAC-SHA256, as the SDK signs), and the harness's own key.

Key names: `AccessKey`, `sign`, `verify`, `SignatureError`, `harness_key_path`, `write_harness_key`,
`read_harness_key`, `remove_harness_key`. One definition serves both ends: the harness checks
what the SDK, `fcbench deploy`, `fcbench invoke`, the URL target and the harness client sign with
`sign`. The harness's key pair is written to a file only its owner can read
(``$FCBENCH_KEYS_DIR``, else ``$XDG_STATE_HOME/fcbench/harness``, else
``~/.local/state/fcbench/harness``), one file per listen address, so every fcbench command
pointed at that address finds it by itself and the user's cloud keys never go to the harness.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

from ._io import atomic_write
from .errors import UsageError

__all__ = ["ALGORITHM", "MAX_SKEW_S", "AccessKey", "SignatureError", "Signer", "harness_key",
           "harness_key_path", "keys_dir", "read_harness_key", "remove_harness_key", "sign",
           "verify", "write_harness_key"]

ALGORITHM = "ACS3-HMAC-SHA256"
#: How far a request's ``x-acs-date`` may be from the harness's clock (FC allows 15 minutes).
MAX_SKEW_S = 15 * 60
#: Headers a signature must cover, or a signed request could be re-aimed or re-bodied.
REQUIRED_SIGNED = ("host", "x-acs-content-sha256", "x-acs-date")
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True, repr=False)
class AccessKey:
    """An access key pair (never printed: the repr masks the secret)."""

    access_key_id: str
    access_key_secret: str

    @classmethod
    def generate(cls) -> AccessKey:
        """A fresh random pair for one harness."""
        return cls("fcbench-" + secrets.token_hex(8), secrets.token_urlsafe(30))

    def __repr__(self) -> str:
        return f"AccessKey(access_key_id={self.access_key_id!r}, access_key_secret='***')"

    __str__ = __repr__


class SignatureError(Exception):
    """A request's signature is missing or wrong; `status` and `code` are FC's answer."""

    def __init__(self, message: str, *, status: int = 403, code: str = "SignatureNotMatch"
                 ) -> None:
        super().__init__(message)
        self.status, self.code = status, code


# ---- the signature ------------------------------------------------------------------------
def _canonical_query(raw_query: str) -> str:
    # the SDK signs the decoded keys and the values re-encoded with only "~" kept
    if not raw_query:
        return ""
    pairs = sorted(parse_qsl(raw_query, keep_blank_values=True))
    return "&".join(f"{k}={quote(v, safe='~')}" for k, v in pairs)


def _string_to_sign(method: str, raw_path: str, raw_query: str, signed: list[str],
                    values: dict[str, list[str]], payload_sha256: str) -> str:
    headers = "".join(f"{name}:{','.join(sorted(v.strip() for v in values.get(name, ())))}\n"
                      for name in signed)
    canonical = (f"{method}\n{raw_path or '/'}\n{_canonical_query(raw_query)}\n{headers}\n"
                 f"{';'.join(signed)}\n{payload_sha256}")
    return f"{ALGORITHM}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"


@functools.lru_cache(maxsize=4)
def _stamp(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


@functools.lru_cache(maxsize=64)
def _parse_stamp(value: str) -> float | None:
    try:
        return calendar.timegm(time.strptime(value.strip(), "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return None


def _hmac(secret: str, text: str) -> str:
    return hmac.digest(secret.encode("utf-8"), text.encode("utf-8"), "sha256").hex()


def sign(key: AccessKey, method: str, target: str, host: str, body: bytes = b"",
         headers: dict[str, str] | None = None, *, now: float | None = None,
         body_sha256: str | None = None, nonce: bool = True) -> dict[str, str]:
    """The headers that sign one request as the FC SDK does.

    Args:
        target: the request target as sent on the wire (percent-encoded path and query).
        host: the ``Host`` header value (``127.0.0.1:9080``).
        headers: other headers to sign along (names any case).
        body_sha256: the body's hex SHA-256, when the caller has it already.
        nonce: add ``x-acs-signature-nonce`` as the SDK does (the harness keeps no nonces, so
            its own clients leave it out: see `Signer`).

    Returns:
        ``x-acs-date``, ``x-acs-signature-nonce``, ``x-acs-content-sha256`` and
        ``Authorization``, to add to the request (with `headers`, which are signed).
    """
    path, _, query = target.partition("?")
    out = {"x-acs-date": _stamp(int(time.time() if now is None else now)),
           "x-acs-content-sha256": body_sha256 or (hashlib.sha256(body).hexdigest() if body
                                                   else EMPTY_SHA256)}
    if nonce:
        out["x-acs-signature-nonce"] = secrets.token_hex(16)
    values: dict[str, list[str]] = {"host": [host]}
    for name, value in {**(headers or {}), **out}.items():
        values.setdefault(name.lower(), []).append(value)
    signed = sorted(values)
    text = _string_to_sign(method, path, query, signed, values, out["x-acs-content-sha256"])
    out["Authorization"] = (f"{ALGORITHM} Credential={key.access_key_id},"
                            f"SignedHeaders={';'.join(signed)},"
                            f"Signature={_hmac(key.access_key_secret, text)}")
    return out


class Signer:
    """Signs request after request to one host with one key, as fcbench's own clients do on
    their hot path: no nonce (the harness keeps none), so the same request in the same second
    has the same signature, and the header lines are reused until the second, the target or the
    body object changes. The harness accepts a repeated ``Authorization`` on the keep-alive
    connection that already proved it (`fcbench.harness.guard`), so neither end hashes or
    signs again for most requests of a load run."""

    __slots__ = ("key", "host", "_last", "_headers", "_lines")

    def __init__(self, key: AccessKey, host: str) -> None:
        self.key, self.host = key, host
        self._last: tuple[int, str, str, bytes] | None = None
        self._headers: dict[str, str] = {}
        self._lines = ""

    def headers(self, method: str, target: str, body: bytes = b"") -> dict[str, str]:
        """The headers that sign one request (the same dict while they stay the same)."""
        second = int(time.time())
        last = self._last
        if last is None or last[0] != second or last[3] is not body or last[1] != method \
                or last[2] != target:
            self._headers = sign(self.key, method, target, self.host, body, nonce=False,
                                 now=float(second))
            self._lines = "".join(f"{k}: {v}\r\n" for k, v in self._headers.items())
            self._last = (second, method, target, body)
        return self._headers

    def header_lines(self, method: str, target: str, body: bytes = b"") -> str:
        """The same as ``Name: value\\r\\n`` lines, ready for a request head."""
        self.headers(method, target, body)
        return self._lines


def verify(key: AccessKey, method: str, raw_path: str, raw_query: str,
           headers: dict[str, list[str]], body_sha256: str, *, now: float | None = None) -> None:
    """Check one request's ACS3-HMAC-SHA256 signature against `key`.

    Args:
        raw_path / raw_query: as they came on the wire (still percent-encoded).
        headers: lower-case name -> every value the request carried.
        body_sha256: the hex SHA-256 of the body as received.

    Raises:
        SignatureError: FC's answer: 400 ``MissingRequiredHeader``, 403 ``InvalidAccessKeyID``
            (FC's spelling), 403 ``SignatureNotMatch``, 403 ``RequestTimeTooSkewed``.
    """
    auth = (headers.get("authorization") or [""])[0].strip()
    if not auth:
        raise SignatureError("required HTTP header Authorization was not specified: sign the "
                             f"request ({ALGORITHM}) with the harness's access key",
                             status=400, code="MissingRequiredHeader")
    algorithm, _, rest = auth.partition(" ")
    fields = dict(part.strip().partition("=")[::2] for part in rest.split(","))
    credential = fields.get("Credential", "")
    signed = [h for h in fields.get("SignedHeaders", "").split(";") if h]
    signature = fields.get("Signature", "")
    if algorithm != ALGORITHM or not (credential and signed and signature):
        raise SignatureError(f"the Authorization header is not an {ALGORITHM} signature "
                             "(Credential=..., SignedHeaders=..., Signature=...)")
    if not hmac.compare_digest(credential, key.access_key_id):
        raise SignatureError(f"invalid access key ID {credential!r}: this harness signs with "
                             "its own key (see `fcbench harness serve`'s output)",
                             code="InvalidAccessKeyID")
    missing = [h for h in REQUIRED_SIGNED if h not in signed]
    if missing:
        raise SignatureError(f"the signature must cover the {', '.join(missing)} header(s)")
    claimed = (headers.get("x-acs-content-sha256") or [""])[0].strip().lower()
    if not hmac.compare_digest(claimed, body_sha256):
        raise SignatureError("x-acs-content-sha256 is not the SHA-256 of the body received")
    _check_date((headers.get("x-acs-date") or [""])[0], now)
    text = _string_to_sign(method, raw_path, raw_query, signed, headers, claimed)
    if not hmac.compare_digest(_hmac(key.access_key_secret, text), signature.lower()):
        raise SignatureError("The request signature we calculated does not match the signature "
                             "you provided. Check your access key and signing method")


def _check_date(value: str, now: float | None) -> None:
    stamp = _parse_stamp(value)
    if stamp is None:
        raise SignatureError(f"x-acs-date {value!r} is not a UTC time like "
                             "2026-12-01T08:00:00Z", status=400, code="InvalidArgument")
    skew = abs((time.time() if now is None else now) - stamp)
    if skew > MAX_SKEW_S:
        raise SignatureError(f"x-acs-date is {skew:.0f} s from the harness's clock (at most "
                             f"{MAX_SKEW_S} s): check this machine's clock",
                             code="RequestTimeTooSkewed")


# ---- the harness's key file ----------------------------------------------------------------
def keys_dir() -> Path:
    """Where harness key files live (created owner-only on first write)."""
    given = os.environ.get("FCBENCH_KEYS_DIR")
    if given:
        return Path(given).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "fcbench" / "harness"


def _host_label(host: str) -> str:
    return host.strip("[]").replace(":", "_") or "localhost"


def harness_key_path(host: str, port: int) -> Path:
    """The key file of the harness listening on `host`:`port`."""
    return keys_dir() / f"{_host_label(host)}-{int(port)}.json"


def write_harness_key(key: AccessKey, host: str, port: int, url: str) -> Path:
    """Write `key` to the harness's key file, readable by its owner only; returns the path.
    Files of harnesses that are gone (their pid no longer runs) are removed on the way."""
    folder = keys_dir()
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    _prune(folder)
    path = harness_key_path(host, port)
    doc = {"endpoint": url, "accessKeyId": key.access_key_id,
           "accessKeySecret": key.access_key_secret, "pid": os.getpid()}
    atomic_write(path, json.dumps(doc), mode=0o600)
    return path


def _prune(folder: Path) -> None:
    for old in folder.glob("*.json"):
        try:
            pid = int(json.loads(old.read_text(encoding="utf-8")).get("pid", 0))
        except (OSError, ValueError, AttributeError):
            continue
        if pid and not _alive(pid):
            old.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_harness_key(key: AccessKey, host: str, port: int) -> None:
    """Remove the key file if it still holds `key` (a newer harness may own the port now)."""
    path = harness_key_path(host, port)
    found = _read(path)
    if found is not None and found.access_key_id == key.access_key_id:
        path.unlink(missing_ok=True)


def _read(path: Path) -> AccessKey | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return AccessKey(str(doc["accessKeyId"]), str(doc["accessKeySecret"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def harness_key(endpoint: str) -> AccessKey | None:
    """The key of the harness at `endpoint` when one wrote its key file, else None."""
    try:
        return read_harness_key(endpoint)
    except UsageError:
        return None


_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_ANY = ("0.0.0.0", "::")


def read_harness_key(endpoint: str) -> AccessKey:
    """The key of the harness at `endpoint` (``http://127.0.0.1:9080`` or ``127.0.0.1:9080``),
    from its key file. A loopback name finds a harness bound to any loopback name or to all
    interfaces.

    Raises:
        UsageError: no key file for that address (what to do is in the message).
    """
    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    host, port = (parts.hostname or "127.0.0.1"), parts.port or 80
    names = [host]
    if host in _LOOPBACK_NAMES or host.startswith("127."):
        names += [n for n in (*_LOOPBACK_NAMES, *_ANY) if n != host]
    for name in names:
        found = _read(harness_key_path(name, port))
        if found is not None:
            return found
    raise UsageError(
        f"no key for a harness at {host}:{port}: is a harness running there? `fcbench harness "
        f"serve SPEC.yaml` writes {harness_key_path(host, port)} when it starts, and every "
        "fcbench command signs with it by itself. A harness started with "
        "--access-key-id/--access-key-secret takes that pair instead; set FCBENCH_KEYS_DIR if "
        "it runs with another key folder.")
