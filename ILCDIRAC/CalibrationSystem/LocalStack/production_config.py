"""The configuration of the production-like stack: a master CS and the local cfg of each host.

The master CS (served by a real Configuration Server) holds what a DIRAC installation holds
before the CalibrationSystem is installed: the Registry (users, groups, the central server's
host), Operations, Resources (the site, its storage elements, the file catalogue) and the
sections of the DIRAC components the installation runs, taken from DIRAC's own
ConfigTemplate.cfg as ``dirac-install-component`` would. The local cfg files hold only what
stays on a host: where the CS is, its certificates, its site, and the database account of the
central server (never in the CS). The host the CalibrationSystem goes to is not registered yet:
the administrator guide does that.
"""

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from diraccfg import CFG

from ILCDIRAC.CalibrationSystem.LocalStack.config import HOST, SITE, VO, registry, section, set_option
from ILCDIRAC.CalibrationSystem.LocalStack.pki import PKIPaths, host_dn, user_dn

CS_NAME = "Production"
#: The central server (CS, services, optimizers, and the worker node's pilot) and the host the
#: administrator guide installs the CalibrationSystem on: names of their certificates (both
#: answer as localhost)
CENTRAL_HOST = "dirac-server"
CALIBRATION_HOST = "calibration"
#: The central server's properties, as a DIRAC server's: its services call each other as
#: trusted hosts, it writes the CS and ResourceStatus, and its pilot matches anybody's jobs and
#: fetches their owners' proxies.
CENTRAL_HOST_PROPERTIES = ("TrustedHost", "CSAdministrator", "ServiceAdministrator", "SiteManager", "Operator",
                           "JobAdministrator", "GenericPilot", "FullDelegation", "ProxyManagement")
#: The DIRAC administrator, who runs the administrator guide with a proxy of this group
ADMIN_USER, ADMIN_GROUP = "admin", "dirac_admin"
ADMIN_PROPERTIES = ("CSAdministrator", "ServiceAdministrator", "JobAdministrator", "Operator", "NormalUser")
SANDBOX_SE = "ProductionSandboxSE"
DATA_SE = "CalibrationSE"
#: The DIRAC services of the installation, in the order one process starts them (the Matcher
#: creates TaskQueueDB's tables before JobManager and OptimizationMind would race to).
SERVICES = (
    ("Framework", "ComponentMonitoring"),
    ("Framework", "ProxyManager"),
    ("ResourceStatus", "ResourceStatus"),
    ("WorkloadManagement", "Matcher"),
    ("WorkloadManagement", "JobManager"),
    ("WorkloadManagement", "JobMonitoring"),
    ("WorkloadManagement", "JobStateUpdate"),
    ("WorkloadManagement", "SandboxStore"),
    ("WorkloadManagement", "OptimizationMind"),
    ("DataManagement", "FileCatalog"),
    ("DataManagement", "StorageElement"),
)
#: The MySQL databases of those services, installed with DIRAC's installer.
DATABASES = (
    ("Framework", "InstalledComponentsDB"),
    ("Framework", "ProxyDB"),
    ("ResourceStatus", "ResourceStatusDB"),
    ("WorkloadManagement", "JobDB"),
    ("WorkloadManagement", "JobLoggingDB"),
    ("WorkloadManagement", "TaskQueueDB"),
    ("WorkloadManagement", "PilotAgentsDB"),
    ("WorkloadManagement", "SandboxMetadataDB"),
    ("DataManagement", "FileCatalogDB"),
)
#: A worker node's JobAgent matches quickly, and a pilot that found nothing ends soon (a new one
#: replaces it): DIRAC's JobAgent waits longer after every failed match.
JOB_AGENT_OPTIONS = {"PollingTime": 1, "SubmissionDelay": 0, "StopAfterFailedMatches": 4,
                     "StopOnApplicationFailure": False, "FillingModeFlag": True}
#: How often a job's watchdog reports to the WMS and hears of a kill (DIRAC: 30 min, at least 20)
WATCHDOG_CHECKING_TIME = 5
CS_REFRESH_TIME = 15
#: Much more CPU time than any test job asks for (the JobAgent counts it down with wall time)
CPU_TIME_LEFT = 10**9


@dataclass(frozen=True)
class Layout:
    """Where the parts of the installation live and listen."""

    instance: Path  #: the central server's DIRAC root: etc/dirac.cfg, etc/<CS_NAME>.cfg
    calibration_host: Path  #: the DIRAC root of the CalibrationSystem's host ($DIRAC in the guide)
    worker_node: Path  #: the worker node's DIRAC root (its JobAgent rewrites its own dirac.cfg)
    storage: Path  #: sandboxes and the storage element's files
    pki: PKIPaths
    cs_port: int
    service_ports: dict = field(default_factory=dict)  #: (system, service) -> port
    db_host: str = "127.0.0.1"
    db_port: int = 3306
    db_user: str = "Dirac"
    db_password: str = ""
    unused_port: int = 9  #: nothing listens there: the place of the OpenSearch DB nobody has

    @property
    def cs_url(self) -> str:
        return f"dips://{HOST}:{self.cs_port}/Configuration/Server"

    def url(self, system: str, service: str) -> str:
        return f"dips://{HOST}:{self.service_ports[system, service]}/{system}/{service}"


def dirac_template(system: str) -> CFG:
    """DIRAC's ConfigTemplate.cfg of a system."""
    text = resources.files(f"DIRAC.{system}System").joinpath("ConfigTemplate.cfg").read_text()
    return CFG().loadFromBuffer(text)


def _component(cfg: CFG, template: CFG, system: str, kind: str, name: str) -> CFG:
    """Copy a component's section from DIRAC's template into Systems/<system>/<kind>/<name>."""
    path = f"{kind}/{name}"
    contents = template.getAsCFG(path) if template.isSection(path) else CFG()
    section(cfg, f"Systems/{system}/{kind}").createNewSection(name, contents=contents)
    return section(cfg, f"Systems/{system}/{kind}/{name}")


def _storage_element(cfg: CFG, name: str, layout: Layout, service: str, path: str) -> None:
    """A DISET storage element served by one of the installation's services."""
    base = f"Resources/StorageElements/{name}"
    set_option(cfg, f"{base}/BackendType", "DISET")
    for access in ("ReadAccess", "WriteAccess", "RemoveAccess", "CheckAccess"):
        set_option(cfg, f"{base}/{access}", "Active")
    protocol = f"{base}/DIP"
    set_option(cfg, f"{protocol}/Host", HOST)
    set_option(cfg, f"{protocol}/Port", layout.service_ports[service])
    set_option(cfg, f"{protocol}/Protocol", "dips")
    set_option(cfg, f"{protocol}/Path", path)
    set_option(cfg, f"{protocol}/Access", "remote")
    set_option(cfg, f"{protocol}/SpaceToken", "")
    set_option(cfg, f"{protocol}/WSUrl", "")


def _registry() -> CFG:
    """The users and groups of the local stack, the administrator, and the central server."""
    cfg = registry(CENTRAL_HOST_PROPERTIES)
    cfg["Hosts"].deleteKey(HOST)
    set_option(cfg, f"Hosts/{CENTRAL_HOST}/DN", host_dn(CENTRAL_HOST))
    set_option(cfg, f"Hosts/{CENTRAL_HOST}/Properties", ", ".join(CENTRAL_HOST_PROPERTIES))
    set_option(cfg, f"Users/{ADMIN_USER}/DN", user_dn(ADMIN_USER))
    set_option(cfg, f"Groups/{ADMIN_GROUP}/Users", ADMIN_USER)
    set_option(cfg, f"Groups/{ADMIN_GROUP}/Properties", ", ".join(ADMIN_PROPERTIES))
    set_option(cfg, f"Groups/{ADMIN_GROUP}/VO", VO)
    set_option(cfg, "DefaultProxyLifeTime", 86400)
    return cfg


def _configuration_server(cfg: CFG, layout: Layout) -> None:
    """The Configuration Server's section (DISET: DIRAC's Tornado server does not run from PyPI)."""
    server = _component(cfg, dirac_template("Configuration"), "Configuration", "Services", "Server")
    server.setOption("HandlerPath", "DIRAC/ConfigurationSystem/Service/ConfigurationHandler.py")
    server.setOption("Port", str(layout.cs_port))
    server.setOption("Protocol", "dips")
    set_option(cfg, "Systems/Configuration/URLs/Server", layout.cs_url)


def master_cs(layout: Layout) -> CFG:
    """The master CS of the installation, as the Configuration Server serves it."""
    cfg = CFG()
    set_option(cfg, "DIRAC/VirtualOrganization", VO)
    set_option(cfg, "DIRAC/Configuration/Name", CS_NAME)
    set_option(cfg, "DIRAC/Configuration/MasterServer", layout.cs_url)
    set_option(cfg, "DIRAC/Configuration/Servers", layout.cs_url)
    # How often every component reloads the CS (DIRAC's default is 300 s): a registration
    # reaches the running services within this time
    set_option(cfg, "DIRAC/Configuration/RefreshTime", CS_REFRESH_TIME)
    # DIRAC 9 without DiracX: no token exchange for this VO (proxies, sandboxes, jobs)
    set_option(cfg, "DiracX/DisabledVOs", VO)
    cfg.createNewSection("Registry", contents=_registry())

    # The site, its worker node (a pool CE) and its storage
    site = f"Resources/Sites/{SITE.split('.')[0]}/{SITE}"
    set_option(cfg, f"{site}/Name", SITE.split(".")[1])
    set_option(cfg, f"{site}/SE", DATA_SE)
    set_option(cfg, f"{site}/CEs/{HOST}/CEType", "Pool")
    set_option(cfg, f"{site}/CEs/{HOST}/Queues/default/maxCPUTime", CPU_TIME_LEFT)
    _storage_element(cfg, SANDBOX_SE, layout, ("WorkloadManagement", "SandboxStore"),
                     "/WorkloadManagement/SandboxStore")
    _storage_element(cfg, DATA_SE, layout, ("DataManagement", "StorageElement"), "/DataManagement/StorageElement")
    catalog = "Resources/FileCatalogs/FileCatalog"
    set_option(cfg, f"{catalog}/AccessType", "Read-Write")
    set_option(cfg, f"{catalog}/Status", "Active")
    set_option(cfg, f"{catalog}/Master", "True")
    # A job finds its input data downloaded into its working directory, as on the grid
    set_option(cfg, "Operations/Defaults/InputDataPolicy/Default",
               "DIRAC.WorkloadManagementSystem.Client.DownloadInputData")
    set_option(cfg, "Operations/Defaults/Services/Catalogs/CatalogList", "FileCatalog")
    # No Accounting nor Monitoring here: a data operation's report then fails at once (reports
    # to Accounting would each wait 5 s for a failover request to the absent RequestManagement)
    set_option(cfg, "Operations/Defaults/MonitoringBackends/DataOperation", "Monitoring")

    _configuration_server(cfg, layout)

    templates = {}
    for system, name in SERVICES:
        template = templates.setdefault(system, dirac_template(system))
        service = _component(cfg, template, system, "Services", name)
        service.setOption("Port", str(layout.service_ports[system, name]))
        service.setOption("Protocol", "dips")
        set_option(cfg, f"Systems/{system}/URLs/{name}", layout.url(system, name))
    sandbox = "Systems/WorkloadManagement/Services/SandboxStore"
    set_option(cfg, f"{sandbox}/LocalSE", SANDBOX_SE)
    set_option(cfg, f"{sandbox}/BasePath", str(layout.storage / "sandboxes"))
    set_option(cfg, "Systems/DataManagement/Services/StorageElement/BasePath", str(layout.storage / "se"))

    for system, name in DATABASES:
        database = f"Systems/{system}/Databases/{name}"
        set_option(cfg, f"{database}/DBName", name)
        set_option(cfg, f"{database}/Host", layout.db_host)
        set_option(cfg, f"{database}/Port", layout.db_port)
    # Job parameters live in OpenSearch, which this installation has not: the section must be
    # complete (or JobMonitoring and JobStateUpdate do not start), and job parameters are lost
    parameters = "Systems/WorkloadManagement/Databases/JobParametersDB"
    for option, value in (("Host", layout.db_host), ("Port", layout.unused_port), ("SSL", "False"),
                          ("User", ""), ("Password", "")):
        set_option(cfg, f"{parameters}/{option}", value)

    wms = dirac_template("WorkloadManagement")
    optimizers = _component(cfg, wms, "WorkloadManagement", "Executors", "Optimizers")
    for executor in optimizers.getOption("Load", []):
        _component(cfg, wms, "WorkloadManagement", "Executors", executor)
    agent = _component(cfg, wms, "WorkloadManagement", "Agents", "JobAgent")
    for option, value in JOB_AGENT_OPTIONS.items():
        agent.setOption(option, str(value))
    return cfg


def _host_basics(cfg: CFG, layout: Layout, root: Path, host: str = "", server_certificate: bool = False) -> None:
    """Where the CS and the CAs are, the site, and the certificate of ``host`` (none: a client);
    ``server_certificate``: every process uses the host certificate, not a proxy."""
    set_option(cfg, "DIRAC/Configuration/Servers", layout.cs_url)
    set_option(cfg, "DIRAC/Security/CALocation", str(layout.pki.ca_dir))
    if host:
        # The name a host's services publish their URLs with (by default its FQDN, which its
        # certificate does not hold)
        set_option(cfg, "DIRAC/Hostname", HOST)
        set_option(cfg, "DIRAC/Security/CertFile", str(layout.pki.named_host_cert(host)))
        set_option(cfg, "DIRAC/Security/KeyFile", str(layout.pki.named_host_key(host)))
    if server_certificate:
        set_option(cfg, "DIRAC/Security/UseServerCertificate", "yes")
    set_option(cfg, "LocalSite/Site", SITE)
    set_option(cfg, "LocalSite/InstancePath", str(root))


def server_cfg(layout: Layout) -> CFG:
    """The local dirac.cfg of the central server, as a pip installation of DIRAC would have it:
    the CS (it runs the master), the host certificate, and the database account of its services."""
    cfg = CFG()
    _host_basics(cfg, layout, layout.instance, CENTRAL_HOST, server_certificate=True)
    # This host runs the master Configuration Server, which needs its own section locally
    set_option(cfg, "DIRAC/Configuration/Master", "yes")
    set_option(cfg, "DIRAC/Configuration/Name", CS_NAME)
    _configuration_server(cfg, layout)
    set_option(cfg, "Systems/Databases/User", layout.db_user)
    set_option(cfg, "Systems/Databases/Password", layout.db_password)
    return cfg


def worker_node_cfg(layout: Layout) -> CFG:
    """The local dirac.cfg of the worker node: each of its pilots (JobAgents) pulls jobs for a
    pool CE with one slot."""
    cfg = CFG()
    _host_basics(cfg, layout, layout.worker_node, CENTRAL_HOST, server_certificate=True)
    set_option(cfg, "LocalSite/LocalCE", "Pool")
    set_option(cfg, "LocalSite/GridCE", HOST)
    set_option(cfg, "LocalSite/CEQueue", "default")
    set_option(cfg, "LocalSite/LocalSE", DATA_SE)
    set_option(cfg, "LocalSite/CPUTimeLeft", CPU_TIME_LEFT)
    set_option(cfg, "LocalSite/NumberOfProcessors", 1)
    set_option(cfg, "Resources/Computing/CEDefaults/NumberOfProcessors", 1)
    for option in ("CheckingTime", "MinCheckingTime"):
        set_option(cfg, f"Systems/WorkloadManagement/JobWrapper/{option}", WATCHDOG_CHECKING_TIME)
    return cfg


def calibration_host_cfg(layout: Layout) -> CFG:
    """The local dirac.cfg of the host the CalibrationSystem goes to, fresh from a pip
    installation of DIRAC: the CS, its host certificate (which its services and agents use; a
    command uses the proxy of whoever runs it) and its site. The administrator guide adds the rest."""
    cfg = CFG()
    _host_basics(cfg, layout, layout.calibration_host, CALIBRATION_HOST)
    return cfg


def client_cfg(layout: Layout, root: Path) -> CFG:
    """The dirac.cfg of a user's client installation: where the CS is and the CAs, nothing else."""
    cfg = CFG()
    _host_basics(cfg, layout, root)
    return cfg
