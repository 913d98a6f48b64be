"""PandoraSettings: the photon-training settings checked as Pandora uses them, and the HistogramFile
of PhotonReconstruction set byte for byte (Procedure.pandora_settings, Worker.pandora_settings).

What Pandora makes of the files is read by ``pandora_photon_reader.read_photon_settings``, the
test-side emulation of PhotonReconstructionAlgorithm::ReadHistogramSettings.
"""
import os
from pathlib import Path

import pytest

from pandora_photon_reader import ReaderFailure, read_photon_settings

from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError, SettingsError
from ILCDIRAC.CalibrationSystem.Procedure.pandora_settings import (
    check_training_settings,
    histogram_file,
    with_histogram_file,
)
from ILCDIRAC.CalibrationSystem.Worker.pandora_settings import (
    CALIBRATION_SETTINGS,
    TRAINING_LIKELIHOOD,
    TRAINING_SETTINGS,
    write_calibration_settings,
    write_training_settings,
)

HERE = Path(__file__).parent
TRAINING = (HERE / "pandora_settings_training_12ebin.xml").read_bytes()  # CLIC-like, 12 energy bins
DEFAULT = (HERE / "pandora_settings_default_cld.xml").read_bytes()  # CLD-like: '--' licence comment, a tab
TRAINING_FILE = b"PandoraLikelihoodData12EBin.xml"
DEFAULT_FILE = b"PandoraSettingsCLD/PandoraLikelihoodData9EBin.xml"
LICENCE = b"<!--\n-- Copyright (c) a collaboration.\n--\n  -->\n"
PHOTON_ALGORITHM = TRAINING[TRAINING.index(b'    <algorithm type = "PhotonReconstruction">'):TRAINING.index(b"</pandora>")]


def _pandora_trains(content):
    """True if Pandora runs one PhotonReconstruction that trains the likelihood with these settings."""
    try:
        algorithms = read_photon_settings(content)
    except ReaderFailure:
        return False
    return len(algorithms) == 1 and algorithms[0]["make_pdf_histograms"]


def test_the_fixtures_are_what_pandora_reads():
    training, = read_photon_settings(TRAINING)
    assert (training["make_pdf_histograms"], training["n_energy_bins"]) == (True, 12)
    assert training["histogram_file"] == TRAINING_FILE.decode()
    assert read_photon_settings(DEFAULT) == [{"histogram_file": DEFAULT_FILE.decode(), "make_pdf_histograms": False}]


@pytest.mark.parametrize("content", [TRAINING, LICENCE + TRAINING, TRAINING.replace(b"<HistogramFile>", b"<X>")
                                     .replace(b"</HistogramFile>", b"</X>")])
def test_training_settings_pandora_trains_with_are_accepted(content):
    check_training_settings(content)


#: (what is wrong, the fixture changed so, what the refusal says): Pandora would not train with any of them.
REFUSED = [
    ("NEnergyBins 9 for 12 edges", (b"<NEnergyBins>12", b"<NEnergyBins>9"),
     r"NEnergyBins is 9 but EnergyBinLowerEdges '0 0.2 .* 75' gives 12 energy bins; Pandora refuses the mismatch:"
     r" set NEnergyBins to 12"),
    ("no NEnergyBins", (b"        <NEnergyBins>12</NEnergyBins>\n", b""), "NEnergyBins is not set"),
    ("NEnergyBins 0", (b"<NEnergyBins>12", b"<NEnergyBins>0"), "from 1 to 10000"),
    ("a repeated edge", (b"0 0.2 0.5 1", b"0 0.2 0.2 1"), "repeats an edge"),
    ("edges that are not numbers", (b"0 0.2 0.5 1", b"0 x 0.5 1"), "EnergyBinLowerEdges is 0 x"),
    ("no edges", (b"        <EnergyBinLowerEdges>0 0.2 0.5 1 1.5 2.5 5 10 20 35 50 75</EnergyBinLowerEdges>\n", b""),
     "EnergyBinLowerEdges is not set"),
    ("reading, not training", (b"<ShouldMakePdfHistograms>true", b"<ShouldMakePdfHistograms>false"),
     "ShouldMakePdfHistograms is false; it must be true, else Pandora reads the likelihood"),
    ("training left at its default", (b"        <ShouldMakePdfHistograms>true</ShouldMakePdfHistograms>\n", b""),
     "ShouldMakePdfHistograms is not set"),
    ("not a bool for Pandora", (b"<ShouldMakePdfHistograms>true", b"<ShouldMakePdfHistograms>True"),
     "ShouldMakePdfHistograms is True"),
    ("no PhotonReconstruction", (b'type = "PhotonReconstruction"', b'type = "PhotonRecovery"'),
     'has no <algorithm type="PhotonReconstruction"> directly inside <pandora>'),
    ("two PhotonReconstructions", (PHOTON_ALGORITHM, PHOTON_ALGORITHM * 2), 'has 2 <algorithm type="PhotonReconstruction">'),
    ("not readable", (b"</pandora>", b""), "is not closed"),
]


@pytest.mark.parametrize("change, message", [entry[1:] for entry in REFUSED], ids=[entry[0] for entry in REFUSED])
def test_training_settings_pandora_would_not_train_with_are_refused(change, message):
    content = TRAINING.replace(*change)
    assert content != TRAINING and not _pandora_trains(content)
    with pytest.raises(SettingsError, match=message):
        check_training_settings(content)


def test_a_nested_photon_reconstruction_is_not_the_one_pandora_runs():
    content = TRAINING.replace(PHOTON_ALGORITHM, b"").replace(
        b'<algorithm type = "CaloHitPreparation"/>',
        b'<algorithm type = "CaloHitPreparation">\n' + PHOTON_ALGORITHM + b"    </algorithm>")
    assert read_photon_settings(content) == []
    with pytest.raises(SettingsError, match='has no <algorithm type="PhotonReconstruction">'):
        check_training_settings(content)


@pytest.mark.parametrize("content, message", [
    (b'<!DOCTYPE p [<!ENTITY e "12">]>\n' + TRAINING.replace(b"<NEnergyBins>12", b"<NEnergyBins>&e;"), "DOCTYPE"),
    (TRAINING * 0, "no root element"),
    (b"\xff\xfe" + TRAINING, "UTF-16"),
])
def test_unsafe_or_unreadable_training_settings_are_refused(content, message):
    with pytest.raises(SettingsError, match=message):
        check_training_settings(content)


# ---------------------------------------------------------------- HistogramFile, byte for byte


@pytest.mark.parametrize("content, old", [(TRAINING, TRAINING_FILE), (DEFAULT, DEFAULT_FILE),
                                          (LICENCE + DEFAULT.replace(b"\n", b"\r\n"), DEFAULT_FILE)])
def test_only_the_histogram_file_changes(content, old):
    changed = with_histogram_file(content, "/work/dir/newPhotonLikelihood.xml", "settings.xml")
    assert changed == content.replace(old, b"/work/dir/newPhotonLikelihood.xml")
    algorithm, = read_photon_settings(changed)
    assert algorithm["histogram_file"] == "/work/dir/newPhotonLikelihood.xml"


def test_a_missing_histogram_file_is_added_in_the_style_of_the_file():
    line = b"        <HistogramFile>PandoraLikelihoodData12EBin.xml</HistogramFile>\n"
    without = TRAINING.replace(line, b"")
    with pytest.raises(ReaderFailure, match="HistogramFile"):
        read_photon_settings(without)  # Pandora requires it
    changed = with_histogram_file(without, "/w/PandoraLikelihoodDataPhotonTraining.xml", "settings.xml")
    assert changed == TRAINING.replace(TRAINING_FILE, b"/w/PandoraLikelihoodDataPhotonTraining.xml")
    assert _pandora_trains(changed)


def test_histogram_file_refusals():
    with pytest.raises(SettingsError, match="up to the first space"):
        with_histogram_file(DEFAULT, "/my work/newPhotonLikelihood.xml", "settings.xml")
    with pytest.raises(SettingsError, match='settings.xml: has no <algorithm type="PhotonReconstruction">'):
        with_histogram_file(b"<!-- none -->\n<pandora>\n    <algorithm type = \"PfoCreation\"/>\n</pandora>\n",
                            "/w/l.xml", "settings.xml")


def test_histogram_file_is_read_as_pandora_reads_it():
    assert histogram_file(DEFAULT, "settings.xml") == DEFAULT_FILE.decode()
    assert histogram_file(DEFAULT.replace(DEFAULT_FILE, b" like.xml  and more "), "s") == "like.xml"
    assert histogram_file(b"<pandora><algorithm type='PhotonReconstruction'/></pandora>", "s") is None
    assert histogram_file(b"<pandora><algorithm type='PfoCreation'/></pandora>", "s") is None


# ---------------------------------------------------------------- the worker's files


def test_worker_writes_the_training_settings_with_its_likelihood_file(tmp_path):
    path = write_training_settings(str(tmp_path / "work"), TRAINING)
    likelihood = str(tmp_path / "work" / TRAINING_LIKELIHOOD)
    assert path == str(tmp_path / "work" / TRAINING_SETTINGS)
    assert Path(path).read_bytes() == TRAINING.replace(TRAINING_FILE, likelihood.encode())
    algorithm, = read_photon_settings(Path(path).read_bytes())
    assert (algorithm["histogram_file"], algorithm["n_energy_bins"]) == (likelihood, 12)


@pytest.mark.parametrize("absolute", [False, True])
def test_worker_patches_the_settings_the_steering_file_names(tmp_path, absolute):
    work = tmp_path / "work"
    (work / "PandoraSettingsCLD").mkdir(parents=True)
    (work / "PandoraSettingsCLD" / "PandoraSettingsDefault.xml").write_bytes(DEFAULT)
    configured = "PandoraSettingsCLD/PandoraSettingsDefault.xml"
    configured = str(work / configured) if absolute else configured
    path = write_calibration_settings(str(work), str(work / "newPhotonLikelihood.xml"), configured)
    assert path == str(work / CALIBRATION_SETTINGS)
    assert Path(path).read_bytes() == DEFAULT.replace(DEFAULT_FILE, str(work / "newPhotonLikelihood.xml").encode())


@pytest.mark.parametrize("configured, message", [
    ("PandoraSettings/PandoraSettingsDefault.xml", "'PandoraSettings/PandoraSettingsDefault.xml' that the steering"
                                                   " file names is not readable on this node"),
    (None, "names no PandoraSettingsXmlFile"),
])
def test_stage_3_without_the_named_settings_is_a_worker_error(tmp_path, configured, message):
    with pytest.raises(ProcedureError, match=message):
        write_calibration_settings(str(tmp_path), str(tmp_path / "newPhotonLikelihood.xml"), configured)
    assert not os.path.exists(tmp_path / CALIBRATION_SETTINGS)
