"""PINs and one-time codes as salted slow hashes: the only form in which they are ever stored.

`hashlib.scrypt` with a random salt per hash; the cost parameters are stored with the hash
(`scrypt$n$r$p$salt$hash`), so raising them later leaves existing PINs verifiable. Hashing costs
tens of milliseconds of CPU on purpose: the async wrappers run it in a thread so the event loop
(every other call) never waits on it. Comparison is constant-time.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os

PIN_LENGTH = 6

#: scrypt cost: n (CPU/memory, a power of two), r (block size), p (parallelism); 16 MiB per hash.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SALT_BYTES, _HASH_BYTES = 16, 32
_PREFIX = "scrypt"


class InvalidPin(ValueError):
    """Not a PIN: the bank's PINs are exactly six digits. The message never holds the input."""


def check_pin_format(pin: str) -> None:
    """Refuse anything but six ASCII digits (no PIN text in the error)."""
    if len(pin) != PIN_LENGTH or not (pin.isascii() and pin.isdigit()):
        raise InvalidPin(f"a PIN is exactly {PIN_LENGTH} digits")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """A new salted scrypt hash of `secret`, with its parameters (blocks: run it in a thread)."""
    salt = os.urandom(_SALT_BYTES)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, dklen=_HASH_BYTES, maxmem=64 * 1024 * 1024)
    return f"{_PREFIX}${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, stored: str) -> bool:
    """Whether `secret` hashes to `stored` (constant-time); a malformed stored hash never matches."""
    try:
        prefix, n, r, p, salt, expected = stored.split("$")
        if prefix != _PREFIX:
            return False
        want = _unb64(expected)
        digest = hashlib.scrypt(secret.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
                                dklen=len(want), maxmem=64 * 1024 * 1024)
    except ValueError:
        return False
    return hmac.compare_digest(digest, want)


async def hash_in_thread(secret: str) -> str:
    """`hash_secret` off the event loop."""
    return await asyncio.to_thread(hash_secret, secret)


async def verify_in_thread(secret: str, stored: str) -> bool:
    """`verify_secret` off the event loop."""
    return await asyncio.to_thread(verify_secret, secret, stored)
