"""The production-like stack's configuration: what the CS holds, what stays on each host."""
from pathlib import Path

import pytest

from ILCDIRAC.CalibrationSystem.LocalStack import production_config as prod
from ILCDIRAC.CalibrationSystem.LocalStack.pki import PKIPaths


@pytest.fixture
def layout(tmp_path):
    ports = {service: 20000 + index for index, service in enumerate(prod.SERVICES)}
    return prod.Layout(instance=tmp_path / "dirac", calibration_host=tmp_path / "calibration",
                       worker_node=tmp_path / "workernode", storage=tmp_path / "storage", pki=PKIPaths(tmp_path / "pki"),
                       cs_port=19999, service_ports=ports, db_port=3307, db_password="s3cret-db-password")


def test_the_cs_holds_every_service_and_database_but_no_database_account(layout):
    cs = prod.master_cs(layout)
    for system, name in prod.SERVICES:
        assert cs.getOption(f"/Systems/{system}/Services/{name}/Port") == str(layout.service_ports[system, name])
        assert cs.getOption(f"/Systems/{system}/URLs/{name}") == layout.url(system, name)
    for system, name in prod.DATABASES:
        database = cs.getAsDict(f"Systems/{system}/Databases/{name}")
        assert database == {"DBName": name, "Host": "127.0.0.1", "Port": "3307"}
    assert "s3cret-db-password" not in str(cs)
    assert cs.getOption("/Systems/Configuration/Services/Server/HandlerPath").endswith("/ConfigurationHandler.py")


def test_the_calibration_host_is_not_registered_before_the_administrator_guide(layout):
    registry = prod.master_cs(layout).getAsDict("Registry")
    assert sorted(registry["Hosts"]) == [prod.CENTRAL_HOST]
    assert "CSAdministrator" in registry["Groups"][prod.ADMIN_GROUP]["Properties"]
    assert registry["Users"][prod.ADMIN_USER]["DN"].endswith(f"CN={prod.ADMIN_USER}")


def test_each_host_keeps_its_own_credentials(layout):
    server = prod.server_cfg(layout)
    assert server.getOption("/Systems/Databases/Password") == "s3cret-db-password"
    assert server.getOption("/DIRAC/Security/UseServerCertificate") == "yes"
    calibration = prod.calibration_host_cfg(layout)
    # its services use the host certificate; a command run there uses its user's proxy
    assert calibration.getOption("/DIRAC/Security/CertFile") == str(layout.pki.named_host_cert(prod.CALIBRATION_HOST))
    assert calibration.getOption("/DIRAC/Security/UseServerCertificate") is None
    assert calibration.getOption("/Systems/Databases/Password") is None
    assert prod.client_cfg(layout, Path("/home/alice")).getOption("/DIRAC/Security/CertFile") is None
    worker = prod.worker_node_cfg(layout)
    assert worker.getOption("/LocalSite/LocalCE") == "Pool"
    assert worker.getOption("/DIRAC/Security/CertFile") == str(layout.pki.named_host_cert(prod.CENTRAL_HOST))
