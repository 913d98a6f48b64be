"""A throw-away test PKI for the local stack: CA, host certificate, user certificates, proxies.

Certificates are made with the openssl command line (fast, no DIRAC state involved). Proxies
are made with DIRAC's own ``X509Chain`` so that they carry the DIRAC group exactly as
``dirac-proxy-init`` would; that runs in a child Python because importing DIRAC fixes its root
path and loads a ``dirac.cfg`` into the importing process, which the caller may not want.
"""

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ORGANISATION = "ILCDIRAC Local Stack"
CA_DN = f"/O={ORGANISATION}/CN=Local Test CA"
HOST_NAME = "localhost"
CERT_DAYS = 3650
PROXY_LIFETIME = 7 * 24 * 3600
PROXY_MIN_REMAINING = 24 * 3600
KEY_BITS = 2048

_EXTENSIONS = {
    "ca": """
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
""",
    "host": f"""
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:{HOST_NAME}, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
""",
    "user": """
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment, dataEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
""",
}


class PKIError(RuntimeError):
    """The openssl or proxy step failed; the message carries the tool's own output."""


@dataclass(frozen=True)
class PKIPaths:
    """Where every credential of the local stack lives (all below one directory)."""

    root: Path

    @property
    def ca_dir(self) -> Path:
        """The CA directory DIRAC and OpenSSL verify against (``X509_CERT_DIR``)."""
        return self.root / "certificates"

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca" / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca" / "ca.key"

    @property
    def host_cert(self) -> Path:
        return self.root / "host" / "hostcert.pem"

    @property
    def host_key(self) -> Path:
        return self.root / "host" / "hostkey.pem"

    def named_host_cert(self, name: str) -> Path:
        """The certificate of another host of the installation (its CN is ``name``; like every
        host here it answers as localhost)."""
        return self.root / "hosts" / name / "hostcert.pem"

    def named_host_key(self, name: str) -> Path:
        return self.root / "hosts" / name / "hostkey.pem"

    def user_cert(self, user: str) -> Path:
        return self.root / "users" / user / "usercert.pem"

    def user_key(self, user: str) -> Path:
        return self.root / "users" / user / "userkey.pem"

    def proxy(self, user: str) -> Path:
        return self.root / f"{user}.proxy"


def user_dn(user: str) -> str:
    """The DN of a local user's certificate, as DIRAC writes it in ``Registry/Users/<u>/DN``."""
    return f"/O={ORGANISATION}/OU=Users/CN={user}"


def host_dn(name: str = HOST_NAME) -> str:
    """The DN of a host certificate (``Registry/Hosts/<host>/DN``): by default the stack's."""
    return f"/O={ORGANISATION}/OU=Hosts/CN={name}"


def _openssl(*args: str) -> str:
    """Run openssl; a failure becomes a PKIError with openssl's message."""
    proc = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PKIError(f"openssl {args[0]} failed: {proc.stderr.strip()}")
    return proc.stdout


def _issue(paths: PKIPaths, subject: str, kind: str, cert: Path, key: Path) -> None:
    """Create a key and a certificate of the given kind, signed by the CA (the CA signs itself)."""
    cert.parent.mkdir(parents=True, exist_ok=True)
    ext_file = cert.parent / f"{cert.stem}.ext"
    ext_file.write_text(_EXTENSIONS[kind])
    csr = cert.parent / f"{cert.stem}.csr"
    old_umask = os.umask(0o077)
    try:
        _openssl("req", "-new", "-newkey", f"rsa:{KEY_BITS}", "-nodes", "-keyout", str(key),
                 "-subj", subject, "-out", str(csr))
    finally:
        os.umask(old_umask)
    serial = f"0x{secrets.randbits(63):x}"
    if kind == "ca":
        signer = ["-signkey", str(key)]
    else:
        signer = ["-CA", str(paths.ca_cert), "-CAkey", str(paths.ca_key)]
    _openssl("x509", "-req", "-in", str(csr), *signer, "-set_serial", serial, "-days", str(CERT_DAYS),
             "-sha256", "-extfile", str(ext_file), "-out", str(cert))
    csr.unlink()
    ext_file.unlink()
    key.chmod(0o600)
    cert.chmod(0o644)


def _link_ca(paths: PKIPaths) -> None:
    """Put the CA into the CA directory under its OpenSSL subject-hash name."""
    paths.ca_dir.mkdir(parents=True, exist_ok=True)
    ca_hash = _openssl("x509", "-hash", "-noout", "-in", str(paths.ca_cert)).strip()
    link = paths.ca_dir / f"{ca_hash}.0"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(os.path.relpath(paths.ca_cert, paths.ca_dir))


def ensure_certificates(root: Path, users: list[str], hosts: tuple[str, ...] = ()) -> PKIPaths:
    """Create the CA, the host certificate, the certificates of the other ``hosts`` and every
    user's certificate that is missing.

    Existing files are kept, so a restarted stack keeps its identities (and its DNs in the cfg).
    """
    paths = PKIPaths(Path(root))
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.root.chmod(0o700)
    if not paths.ca_cert.exists():
        _issue(paths, CA_DN, "ca", paths.ca_cert, paths.ca_key)
        _link_ca(paths)
    if not paths.host_cert.exists():
        _issue(paths, host_dn(), "host", paths.host_cert, paths.host_key)
    for host in hosts:
        if not paths.named_host_cert(host).exists():
            _issue(paths, host_dn(host), "host", paths.named_host_cert(host), paths.named_host_key(host))
    for user in users:
        if not paths.user_cert(user).exists():
            _issue(paths, user_dn(user), "user", paths.user_cert(user), paths.user_key(user))
    return paths


def proxy_is_fresh(proxy: Path, min_remaining: int = PROXY_MIN_REMAINING) -> bool:
    """True if the proxy file exists and stays valid for at least ``min_remaining`` seconds."""
    if not proxy.exists():
        return False
    proc = subprocess.run(["openssl", "x509", "-noout", "-checkend", str(min_remaining), "-in", str(proxy)],
                          capture_output=True, check=False)
    return proc.returncode == 0


def make_proxy(cert: Path, key: Path, proxy: Path, group: str, lifetime: int = PROXY_LIFETIME) -> None:
    """Write a DIRAC proxy (mode 0600) for ``group`` with X509Chain, in-process."""
    from DIRAC.Core.Security.X509Chain import X509Chain

    chain = X509Chain()
    for result in (chain.loadChainFromFile(str(cert)), chain.loadKeyFromFile(str(key)),
                   chain.generateProxyToFile(str(proxy), lifetime, diracGroup=group)):
        if not result["OK"]:
            raise PKIError(f"cannot make the proxy {proxy} for group {group}: {result['Message']}")
    proxy.chmod(0o600)


def ensure_proxies(paths: PKIPaths, groups: dict[str, str], env: dict[str, str] | None = None) -> list[str]:
    """(Re)make the proxies of the users in ``groups`` (user -> DIRAC group) that are missing or
    expire within a day, in one child Python. Returns the users whose proxy was made."""
    stale = [user for user in groups if not proxy_is_fresh(paths.proxy(user))]
    if not stale:
        return []
    args = [sys.executable, "-m", __name__, str(paths.root)]
    for user in stale:
        args += [user, groups[user]]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise PKIError(f"proxy generation failed: {(proc.stderr or proc.stdout).strip()[-2000:]}")
    return stale


def _main(argv: list[str]) -> int:
    """Child entry point of ensure_proxies: ``ROOT USER GROUP [USER GROUP ...]``."""
    paths = PKIPaths(Path(argv[0]))
    pairs = argv[1:]
    for user, group in zip(pairs[::2], pairs[1::2]):
        make_proxy(paths.user_cert(user), paths.user_key(user), paths.proxy(user), group)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
