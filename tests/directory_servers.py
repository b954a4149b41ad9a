"""Real directory servers for the sign-in tests, each its own process on a free port:
OpenLDAP's `slapd` with a throwaway LDIF, and the throwaway OIDC provider in
`tests/oidc_provider` (django-oauth-toolkit)."""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from config.identity import sign_in_settings
from devserver.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent
SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
BASE_DN = "dc=example,dc=com"


def sign_in_configure(monkeypatch: pytest.MonkeyPatch, settings: Any, env: dict[str, str]) -> None:
    """Sign-in configured as a deployment does it, through POLICYDESK_* variables (added to the
    test's environment), then parsed by config.identity into the test's settings."""
    for name, value in env.items():
        monkeypatch.setenv("POLICYDESK_" + name, value)
    for name, value in sign_in_settings(debug=False).items():
        setattr(settings, name, value)


def _wait(check: Callable[[], bool], *, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start within {timeout:.0f} s")


class _Server:
    process: subprocess.Popen[bytes] | None

    def _answers(self) -> bool:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def _started(self, *, what: str, timeout: float = 30.0) -> None:
        """Waits until it answers; one that never does is stopped, not left running (a fixture
        whose setup raised gets no teardown)."""
        try:
            _wait(self._answers, what=what, timeout=timeout)
        except BaseException:
            self.stop()
            raise


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Slapd(_Server):
    """OpenLDAP on 127.0.0.1:<free port>. The directory (users, nested groups, a disabled user)
    is loaded with slapadd before the server starts; tests change it over LDAP as the admin."""

    admin_dn = f"cn=admin,{BASE_DN}"
    service_dn = f"cn=policydesk,ou=services,{BASE_DN}"

    def __init__(self, ldif: str, *, tls: bool = False) -> None:
        self.ldif = ldif
        self.tls = tls
        self.admin_password = secrets.token_urlsafe(12)
        self.service_password = "svc-" + secrets.token_urlsafe(12)
        self.port = self.tls_port = 0
        self.dir = Path(tempfile.mkdtemp(prefix="slapd-"))
        self.ca_file = self.dir / "company-ca.pem"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_uri(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    def _tls_config(self) -> str:
        """A company CA of its own and a server certificate it signed, for 127.0.0.1."""
        if not self.tls:
            return ""
        ca_key, server_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))
        now = datetime.now(UTC)

        def certificate(subject: str, key: ec.EllipticCurvePrivateKey, *, ca: bool) -> x509.Certificate:
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
            builder = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Example Corp CA")]))
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(minutes=5))
                .not_valid_after(now + timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            )
            if not ca:
                san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
                builder = builder.add_extension(san, critical=False)
            return builder.sign(ca_key, hashes.SHA256())

        pem = serialization.Encoding.PEM
        self.ca_file.write_bytes(certificate("Example Corp CA", ca_key, ca=True).public_bytes(pem))
        (self.dir / "server.pem").write_bytes(
            certificate("127.0.0.1", server_key, ca=False).public_bytes(pem)
        )
        (self.dir / "server.key").write_bytes(
            server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        return (
            f"TLSCACertificateFile {self.ca_file}\n"
            f"TLSCertificateFile {self.dir / 'server.pem'}\n"
            f"TLSCertificateKeyFile {self.dir / 'server.key'}\n"
        )

    def _config(self) -> Path:
        includes = "\n".join(f"include /etc/ldap/schema/{name}.schema" for name in SCHEMAS)
        config = self.dir / "slapd.conf"
        config.write_text(
            f"""{includes}
{self._tls_config()}modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {self.dir}/slapd.pid
database mdb
maxsize 10485760
suffix "{BASE_DN}"
rootdn "{self.admin_dn}"
rootpw {self.admin_password}
directory {self.dir}/db
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
"""
        )
        return config

    def start(self) -> None:
        if not Path(SLAPD).exists():
            raise RuntimeError(f"{SLAPD} is missing (apt-get install slapd ldap-utils)")
        (self.dir / "db").mkdir()
        config = self._config()
        ldif = self.dir / "directory.ldif"
        ldif.write_text(self.ldif.replace("{SERVICE_PASSWORD}", self.service_password))
        subprocess.run([SLAPADD, "-q", "-f", str(config), "-l", str(ldif)], check=True, capture_output=True)
        self.port = free_port()
        listen = self.uri + "/"
        if self.tls:
            self.tls_port = free_port()
            listen += " " + self.ldaps_uri + "/"
        # -d 0: stay in the foreground (so the fixture owns the process) without debug output.
        self.process = subprocess.Popen(
            [SLAPD, "-d", "0", "-f", str(config), "-h", listen],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._started(what="slapd")

    def _answers(self) -> bool:
        import ldap

        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"slapd exited with {self.process.returncode}")
        connection = ldap.initialize(self.uri)
        try:
            connection.simple_bind_s(self.service_dn, self.service_password)
        except ldap.SERVER_DOWN:
            return False  # not listening yet
        connection.unbind_s()
        return True

    def admin(self) -> Any:
        import ldap

        connection = ldap.initialize(self.uri)
        connection.simple_bind_s(self.admin_dn, self.admin_password)
        return connection

    def stop(self) -> None:
        _stop(self.process)
        shutil.rmtree(self.dir, ignore_errors=True)


class OIDCProvider(_Server):
    """django-oauth-toolkit's OIDC provider, its own Django project and process."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="idp-"))
        self.token = secrets.token_urlsafe(16)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return self.url + "/o"

    def start(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "POLICYDESK_"))}
        env.update(
            IDP_SECRET_KEY=secrets.token_urlsafe(32),
            IDP_RSA_KEY=pem,
            IDP_DATABASE=str(self.dir / "idp.sqlite3"),
            IDP_TEST_TOKEN=self.token,
        )
        self.port = free_port()
        self.log = (self.dir / "idp.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.oidc_provider", str(self.port)],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._started(what="the OIDC provider", timeout=60)

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError("the OIDC provider exited: " + (self.dir / "idp.log").read_text()[-2000:])
        return httpx.get(self.issuer + "/.well-known/openid-configuration", timeout=2).status_code == 200

    def _put(self, path: str, body: dict[str, object]) -> dict[str, object]:
        response = httpx.post(self.url + path, json=body, headers={"X-Test-Token": self.token}, timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def user_put(self, username: str, *, password: str, groups: list[str], active: bool = True) -> str:
        """Create or update a user; returns its `sub`."""
        body = {"username": username, "password": password, "groups": groups, "active": active}
        return str(self._put("/testing/users", body)["sub"])

    def client_put(
        self, client_id: str, *, secret: str, redirect_uris: list[str], logout_uris: list[str]
    ) -> None:
        self._put(
            "/testing/clients",
            {"client_id": client_id, "client_secret": secret, "redirect_uris": redirect_uris,
             "post_logout_redirect_uris": logout_uris},
        )  # fmt: skip

    def stop(self) -> None:
        _stop(self.process)
        shutil.rmtree(self.dir, ignore_errors=True)
