"""Tiny bearer-token server for the test registries (stdlib only).

Implements the token endpoint of the distribution "token authentication"
spec, enough for docker/containers-image/our own clients:

* ``GET  /token?service=S&scope=repository:NAME:pull,push[&scope=...]``
  with optional HTTP Basic credentials (the "docker token" flow);
* ``POST /token`` with ``grant_type=password`` (username/password) or
  ``grant_type=refresh_token`` (the OAuth2 flow, ``access_type=offline``
  returns a refresh token);
* ``GET  /healthz`` -> 200 (readiness probe).

Policy (Docker-Hub like):

* valid credentials   -> every requested action on every repository
                         (pull, push, delete, *), plus ``registry:catalog:*``;
* no credentials      -> ``pull`` only, and only on repositories whose name
                         does not start with ``private/`` (those get an empty
                         grant, so the registry answers 401 insufficient_scope);
* wrong credentials   -> 401 from this server.

Tokens are JWTs signed RS256 with the key in ``signing_key``; the JOSE header
carries ``x5c`` = [the signing certificate], which the registry verifies
against ``auth.token.rootcertbundle`` (the same certificate, self-signed).
RSA PKCS#1 v1.5 signing is done in pure Python (CRT + pow), so no third-party
crypto library is needed.

Usage: python3 token_server.py CONFIG.json   (started by tests/setup/registry/registry)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# --------------------------------------------------------------------------
# Minimal DER / PEM handling for an RSA private key and a certificate.


def _pem_blocks(text: str) -> list[tuple[str, bytes]]:
    out = []
    label = None
    body: list[str] = []
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if line.startswith("-----BEGIN ") and line.endswith("-----"):
            label, body = line[11:-5], []
        elif line.startswith("-----END ") and label is not None:
            out.append((label, base64.b64decode("".join(body))))
            label = None
        elif label is not None:
            body.append(line)
    return out


def _der_read(buf: bytes, pos: int) -> tuple[int, bytes, int]:
    """Return (tag, value, next_pos) of the TLV at ``pos``."""
    tag = buf[pos]
    length = buf[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(buf[pos : pos + n], "big")
        pos += n
    return tag, buf[pos : pos + length], pos + length


def _der_seq_items(value: bytes) -> list[tuple[int, bytes]]:
    items, pos = [], 0
    while pos < len(value):
        tag, val, pos = _der_read(value, pos)
        items.append((tag, val))
    return items


class RSAKey:
    def __init__(self, pem_text: str):
        for label, der in _pem_blocks(pem_text):
            if label == "RSA PRIVATE KEY":
                self._load_pkcs1(der)
                return
            if label == "PRIVATE KEY":  # PKCS#8 wrapping PKCS#1
                seq = _der_read(der, 0)[1]
                items = _der_seq_items(seq)
                # version INTEGER, algorithm SEQUENCE, privateKey OCTET STRING
                self._load_pkcs1(items[2][1])
                return
        raise ValueError("no RSA private key found")

    def _load_pkcs1(self, der: bytes) -> None:
        seq = _der_read(der, 0)[1]
        ints = [int.from_bytes(v, "big") for t, v in _der_seq_items(seq) if t == 0x02]
        _ver, self.n, self.e, self.d, self.p, self.q, self.dp, self.dq, self.qinv = ints[:9]
        self.k = (self.n.bit_length() + 7) // 8

    # RSASSA-PKCS1-v1_5 with SHA-256 (JWS "RS256")
    _SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")

    def sign_rs256(self, data: bytes) -> bytes:
        t = self._SHA256_PREFIX + hashlib.sha256(data).digest()
        em = b"\x00\x01" + b"\xff" * (self.k - len(t) - 3) + b"\x00" + t
        m = int.from_bytes(em, "big")
        s1 = pow(m, self.dp, self.p)
        s2 = pow(m, self.dq, self.q)
        h = (self.qinv * (s1 - s2)) % self.p
        s = s2 + h * self.q
        assert pow(s, self.e, self.n) == m
        return s.to_bytes(self.k, "big")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --------------------------------------------------------------------------


class TokenIssuer:
    def __init__(self, cfg: dict):
        with open(cfg["signing_key"], encoding="ascii") as fh:
            self.key = RSAKey(fh.read())
        with open(cfg["signing_cert"], encoding="ascii") as fh:
            certs = [der for label, der in _pem_blocks(fh.read()) if label == "CERTIFICATE"]
        self.x5c = [base64.b64encode(der).decode() for der in certs]
        self.issuer = cfg["issuer"]
        self.service = cfg["service"]
        self.ttl = int(cfg.get("ttl", 300))
        self.users = {cfg["username"]: cfg["password"]}
        self.private_prefixes = tuple(cfg.get("private_prefixes", ["private/"]))
        self.refresh: dict[str, str] = {}
        self.lock = threading.Lock()

    def check_user(self, user: str | None, password: str | None) -> bool:
        if user is None:
            return False
        want = self.users.get(user)
        return want is not None and hmac.compare_digest(want.encode(), (password or "").encode())

    def grant(self, user: str | None, scopes: list[str]) -> list[dict]:
        access: list[dict] = []
        for scope in scopes:
            # type:name:actions ; name may contain ':' (e.g. host:port/repo)
            parts = scope.split(":")
            if len(parts) < 3:
                continue
            rtype, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
            if user is not None:
                allowed = [a for a in actions if a in ("pull", "push", "delete", "*")]
            elif rtype == "repository" and not name.startswith(self.private_prefixes):
                allowed = [a for a in actions if a == "pull"]
            else:
                allowed = []
            access.append({"type": rtype, "name": name, "actions": allowed})
        return access

    def issue(self, user: str | None, scopes: list[str]) -> tuple[str, list[dict], int]:
        now = int(time.time())
        access = self.grant(user, scopes)
        header = {"typ": "JWT", "alg": "RS256", "x5c": self.x5c}
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.service,
            "exp": now + self.ttl,
            "nbf": now - 5,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        sig = self.key.sign_rs256(signing_input.encode())
        return signing_input + "." + _b64url(sig), access, now


class Handler(BaseHTTPRequestHandler):
    server_version = "volt-token-server/1"
    protocol_version = "HTTP/1.1"
    issuer: TokenIssuer
    marker: str

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), self.address_string(), fmt % args))
        sys.stderr.flush()

    def _send_json(self, code: int, obj: dict, extra: dict | None = None) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Volt-Registry", self.marker)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _basic(self) -> tuple[str | None, str | None, bool]:
        """(user, password, header_present)"""
        h = self.headers.get("Authorization")
        if not h:
            return None, None, False
        scheme, _sep, val = h.partition(" ")
        if scheme.lower() != "basic":
            return None, None, True
        try:
            user, _sep, pw = base64.b64decode(val.strip()).decode().partition(":")
        except Exception:
            return None, None, True
        return user, pw, True

    def _unauthorized(self) -> None:
        self._send_json(
            401,
            {"errors": [{"code": "UNAUTHORIZED", "message": "invalid username or password"}]},
            {"WWW-Authenticate": 'Basic realm="volt-token-server"'},
        )

    def _token_response(self, user: str | None, scopes: list[str], refresh: str | None = None):
        token, access, now = self.issuer.issue(user, scopes)
        self.log_message("issued token sub=%r access=%s", user or "", json.dumps(access))
        resp = {
            "token": token,
            "access_token": token,
            "expires_in": self.issuer.ttl,
            "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        }
        if refresh:
            resp["refresh_token"] = refresh
        self._send_json(200, resp)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/healthz":
            self._send_json(200, {"ok": True})
            return
        if url.path != "/token":
            self._send_json(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
            return
        q = urllib.parse.parse_qs(url.query)
        user, pw, present = self._basic()
        if present and not self.issuer.check_user(user, pw):
            self._unauthorized()
            return
        scopes = [s for v in q.get("scope", []) for s in v.split(" ") if s]
        refresh = None
        if user is not None and q.get("offline_token", ["false"])[0] == "true":
            refresh = self._new_refresh(user)
        self._token_response(user if present else None, scopes, refresh)

    def _new_refresh(self, user: str) -> str:
        tok = secrets.token_urlsafe(24)
        with self.issuer.lock:
            self.issuer.refresh[tok] = user
        return tok

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/token":
            self._send_json(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
            return
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        grant_type = form.get("grant_type", [""])[0]
        scopes = [s for v in form.get("scope", []) for s in v.split(" ") if s]
        if grant_type == "password":
            user, pw = form.get("username", [None])[0], form.get("password", [None])[0]
            if not self.issuer.check_user(user, pw):
                self._unauthorized()
                return
        elif grant_type == "refresh_token":
            with self.issuer.lock:
                user = self.issuer.refresh.get(form.get("refresh_token", [""])[0])
            if user is None:
                self._unauthorized()
                return
        else:
            self._send_json(400, {"error": "unsupported_grant_type"})
            return
        refresh = None
        if form.get("access_type", [""])[0] == "offline":
            refresh = self._new_refresh(user)
        self._token_response(user, scopes, refresh)


def main() -> int:
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__ or "")
        return 2
    with open(sys.argv[1], encoding="utf-8") as fh:
        cfg = json.load(fh)
    Handler.issuer = TokenIssuer(cfg)
    Handler.marker = cfg.get("marker", "")
    ThreadingHTTPServer.request_queue_size = 64
    httpd = ThreadingHTTPServer((cfg.get("host", "127.0.0.1"), int(cfg["port"])), Handler)
    httpd.daemon_threads = True
    if cfg.get("tls_cert"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cfg["tls_cert"], cfg["tls_key"])
        # handshake lazily in the handler thread, so a stalled client cannot
        # block accept()
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
    sys.stderr.write("volt-token-server listening on %s:%s\n" % httpd.server_address[:2])
    sys.stderr.flush()
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
