"""The dirac.cfg of the local stack: a complete configuration with no Configuration Server.

The Calibration service, agent and database sections come from the package's
ConfigTemplate.cfg (the single place where their options and authorization rules are defined);
only what depends on this machine (ports, paths, credentials, a short polling time) is set here.
"""

import os
from pathlib import Path

from diraccfg import CFG

from ILCDIRAC.CalibrationSystem.LocalStack.pki import PKIPaths, host_dn, user_dn

DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "ConfigTemplate.cfg"
SYSTEM = "Calibration"
SERVICE = "Calibration"
AGENT = "CalibrationAgent"
DATABASE = "CalibrationDB"
VO = "ilc"
SITE = "LCG.Local.local"
HOST = "localhost"
HOST_PROPERTIES = ("TrustedHost", "CSAdministrator", "FullDelegation")
#: Local users and their (only) DIRAC group.
USER_GROUPS = {"alice": "calice_user", "bob": "ilc_user"}
DEFAULT_GROUP = "ilc_user"
AGENT_POLLING_TIME = 2


def section(cfg: CFG, path: str) -> CFG:
    """The section at a '/'-separated path, created (with its parents) if missing."""
    node = cfg
    for name in [part for part in path.split("/") if part]:
        if not node.isSection(name):
            node.createNewSection(name)
        node = node[name]
    return node


def set_option(cfg: CFG, path: str, value: object) -> None:
    """Set an option at a '/'-separated path, creating the sections on the way."""
    parent, _, option = path.strip("/").rpartition("/")
    section(cfg, parent).setOption(option, str(value))


def _template_section(template: CFG, path: str) -> CFG:
    """A copy of one component section of the template (empty if the template lacks it)."""
    return template.getAsCFG(path) if template.isSection(path) else CFG()


def registry(host_properties: tuple[str, ...] = HOST_PROPERTIES) -> CFG:
    """VO, users (by DN), their groups and the host with ``host_properties`` (by default those
    the agent needs)."""
    cfg = CFG()
    set_option(cfg, "DefaultGroup", DEFAULT_GROUP)
    set_option(cfg, f"VO/{VO}/VOAdmin", next(iter(USER_GROUPS)))
    set_option(cfg, f"VO/{VO}/DefaultGroup", DEFAULT_GROUP)
    for user in USER_GROUPS:
        set_option(cfg, f"Users/{user}/DN", user_dn(user))
    for group in sorted(set(USER_GROUPS.values())):
        members = [user for user, grp in USER_GROUPS.items() if grp == group]
        set_option(cfg, f"Groups/{group}/Users", ", ".join(members))
        set_option(cfg, f"Groups/{group}/Properties", "NormalUser")
        set_option(cfg, f"Groups/{group}/VO", VO)
    set_option(cfg, f"Hosts/{HOST}/DN", host_dn())
    set_option(cfg, f"Hosts/{HOST}/Properties", ", ".join(host_properties))
    return cfg


def build_config(
    workdir: Path,
    pki: PKIPaths,
    service_port: int,
    db_params: dict,
    template: Path = DEFAULT_TEMPLATE,
    overrides: dict[str, str] | None = None,
    use_server_certificate: bool = False,
) -> CFG:
    """The complete cfg of the stack in ``workdir``.

    ``db_params`` is LocalStack.db_params() (host, port, user, password, dbname); ``overrides``
    maps absolute cfg paths (e.g. ``/Systems/Calibration/Agents/CalibrationAgent/PollingTime``)
    to values and is applied last. ``use_server_certificate`` makes every client of this cfg
    authenticate with the host certificate instead of a proxy.
    """
    workdir = Path(workdir)
    tmpl = CFG().loadFromFile(str(template))
    cfg = CFG()
    set_option(cfg, "DIRAC/VirtualOrganization", VO)
    set_option(cfg, "DIRAC/Hostname", HOST)
    set_option(cfg, "DIRAC/Security/CALocation", str(pki.ca_dir))
    set_option(cfg, "DIRAC/Security/CertFile", str(pki.host_cert))
    set_option(cfg, "DIRAC/Security/KeyFile", str(pki.host_key))
    if use_server_certificate:
        set_option(cfg, "DIRAC/Security/UseServerCertificate", "yes")
    set_option(cfg, "LocalSite/Site", SITE)
    set_option(cfg, "LocalSite/InstancePath", str(workdir))
    set_option(cfg, "DiracX/DisabledVOs", VO)
    cfg.createNewSection("Registry", contents=registry())

    system = f"Systems/{SYSTEM}"
    set_option(cfg, f"{system}/URLs/{SERVICE}", f"dips://{HOST}:{service_port}/{SYSTEM}/{SERVICE}")
    for kind, name in (("Services", SERVICE), ("Agents", AGENT), ("Databases", DATABASE)):
        section(cfg, f"{system}/{kind}").createNewSection(name, contents=_template_section(tmpl, f"{kind}/{name}"))
    service, agent, database = (f"{system}/Services/{SERVICE}", f"{system}/Agents/{AGENT}",
                                f"{system}/Databases/{DATABASE}")
    set_option(cfg, f"{service}/Port", service_port)
    set_option(cfg, f"{service}/Protocol", "dips")
    set_option(cfg, f"{agent}/PollingTime", AGENT_POLLING_TIME)
    # The local deployment: workers as processes of this host, results into its directories
    set_option(cfg, f"{agent}/JobBackend", "Local")
    set_option(cfg, f"{agent}/LocalJobDirectory", str(workdir / "jobs"))
    set_option(cfg, f"{agent}/ResultStorage", "Local")
    set_option(cfg, f"{database}/DBName", db_params["dbname"])
    set_option(cfg, f"{database}/Host", db_params["host"])
    set_option(cfg, f"{database}/Port", db_params["port"])
    set_option(cfg, f"{database}/User", db_params["user"])
    set_option(cfg, f"{database}/Password", db_params["password"])
    for path, value in (overrides or {}).items():
        set_option(cfg, path, value)
    return cfg


#: The OpenSSL configuration of the service process (its OPENSSL_CONF). A DISET call is one TLS
#: connection: the client's last handshake message and its first request are both small, and on
#: a connection with unacknowledged data Nagle's algorithm holds a small segment until the ACK.
#: After the handshake an OpenSSL 3 server sends two TLS 1.3 session tickets in two writes: the
#: first carries the ACK that releases the client's request, the second is held until the client
#: acknowledges the first, and the server's first answer then waits behind it for the client's
#: delayed ACK: about 40 ms per call. With one ticket nothing waits (the client's request
#: acknowledges it). DISET does not reuse TLS sessions, so the ticket is never used either, but
#: none at all leaves the client's request waiting for the server's delayed ACK instead.
#: Setting TCP_NODELAY on the server's sockets would also do, but DIRAC 9 has no option for it:
#: only its private transport classes (Core/DISET/private/Transports) hold the sockets, and
#: OpenSSL's configuration file is the supported way to set what an application does not expose.
#: ``{tickets}``: TLS 1.3 session tickets per handshake (OpenSSL's default is 2).
OPENSSL_CONFIG = """# OpenSSL configuration of the Calibration service (OPENSSL_CONF): see LocalStack/config.py
openssl_conf = calibration_service
[calibration_service]
ssl_conf = calibration_ssl
[calibration_ssl]
system_default = calibration_tls
[calibration_tls]
NumTickets = {tickets}
"""
#: One ticket: the service answers without waiting for delayed ACKs (see OPENSSL_CONFIG).
SESSION_TICKETS = 1


def write_openssl_config(path: Path, tickets: int = SESSION_TICKETS) -> None:
    """Write the service's OpenSSL configuration (OPENSSL_CONFIG) with ``tickets`` session tickets."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OPENSSL_CONFIG.format(tickets=tickets))


def write_config(cfg: CFG, path: Path) -> None:
    """Write the cfg atomically, readable by its owner only (it holds the DB password)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(str(cfg))
    tmp.replace(path)
