"""The PfoAnalysis processor of a calibration: added to files that have none (CLIC and CLD
structures), with the collections the file's own processors use, or checked when present."""
import difflib
import pathlib

import pytest

from ILCDIRAC.CalibrationSystem.Procedure.constants import CONSTANTS
from ILCDIRAC.CalibrationSystem.Procedure.errors import SteeringError
from ILCDIRAC.CalibrationSystem.Procedure.pfoanalysis_processor import prepare_pfoanalysis
from ILCDIRAC.CalibrationSystem.Procedure.settings import create_settings
from ILCDIRAC.CalibrationSystem.Procedure.steering import (
    parse_steering, processor_name_of_type, processor_parameter, read_constants, render_final_steering,
    render_steering)

UNIT = pathlib.Path(__file__).parent
TEMPLATE = (UNIT / "calibration_steering.xml").read_bytes()
CLIC_LIKE = (UNIT / "fixtures" / "clic_like_steering.xml").read_bytes()
CLD_LIKE = (UNIT / "fixtures" / "cld_like_steering.xml").read_bytes()
CLIC = create_settings("CLIC")
CLD = create_settings("CLD")

EXPECTED_PARAMETERS = {
    "PfoCollection": "PandoraPFOs",
    "MCParticleCollection": "MCParticle",
    "CollectCalibrationDetails": "1",
    "RootFile": "pfoAnalysis.root",
    "NBinsMuonCaloHitEnergyHist": "500",
    "XUpperValueMuonCaloHitEnergyHist": "0.002",
    "ECalCollections": "ECALBarrel ECALEndcap ECALOther",
    "HCalCollections": "HCALBarrel HCALEndcap HCALOther",
    "MuonCollections": "MUON",
    "ECalCollectionsSimCaloHit": "ECalBarrelCollection ECalEndcapCollection ECalPlugCollection",
    "ECalBarrelCollectionsSimCaloHit": "ECalBarrelCollection",
    "ECalEndCapCollectionsSimCaloHit": "ECalEndcapCollection",
    "ECalOtherCollectionsSimCaloHit": "ECalPlugCollection",
    "HCalBarrelCollectionsSimCaloHit": "HCalBarrelCollection",
    "HCalEndCapCollectionsSimCaloHit": "HCalEndcapCollection",
    "HCalOtherCollectionsSimCaloHit": "HCalRingCollection",
    "MuonCollectionsSimCaloHit": "YokeBarrelCollection YokeEndcapCollection",
}


def _diff(before, after):
    """(removed lines, added lines) between two files."""
    lines = list(difflib.unified_diff(before.decode().splitlines(), after.decode().splitlines(), lineterm="", n=0))
    body = [line for line in lines if not line.startswith(("---", "+++", "@@"))]
    return [line[1:] for line in body if line[0] == "-"], [line[1:] for line in body if line[0] == "+"]


def _parameters(content, processor):
    steering = parse_steering(content)
    definition = steering.processors[processor]
    return {p.get("name"): " ".join(steering.values(p)) for p in definition.element.elements("parameter")}


@pytest.mark.parametrize("content, settings, pandora", [
    (CLIC_LIKE, CLIC, "MyDDMarlinPandora"), (CLD_LIKE, CLD, "MyDDMarlinPandora_10ns")])
def test_added_with_the_files_own_collections(content, settings, pandora):
    template, note = prepare_pfoanalysis(content, settings)
    assert processor_name_of_type(template, "PfoAnalysis") == "MyPfoAnalysis"
    assert _parameters(template, "MyPfoAnalysis") == EXPECTED_PARAMETERS
    steering = parse_steering(template)
    assert steering.processors["MyPfoAnalysis"].group is None          # takes no group parameter
    executed = list(steering.executed)
    assert executed[executed.index(pandora) + 1] == "MyPfoAnalysis"
    assert read_constants(template, CONSTANTS, settings) == read_constants(content, CONSTANTS, settings)
    assert note == (f"added PfoAnalysis processor 'MyPfoAnalysis' after '{pandora}' reading PFOs PandoraPFOs, MC "
                    "particles MCParticle, calorimeter hits ECALBarrel ECALEndcap ECALOther HCALBarrel HCALEndcap "
                    "HCALOther MUON and simulated hits ECalBarrelCollection ECalEndcapCollection ECalPlugCollection "
                    "HCalBarrelCollection HCalEndcapCollection HCalRingCollection YokeBarrelCollection "
                    "YokeEndcapCollection")


def test_only_lines_are_added_with_the_indentation_of_their_neighbours():
    template, _ = prepare_pfoanalysis(CLIC_LIKE, CLIC)
    removed, added = _diff(CLIC_LIKE, template)
    assert removed == []
    assert added.count("") == 1       # a blank line between it and its neighbours (where diff puts it varies)
    added.remove("")
    assert added[:3] == ['    <processor name="MyPfoAnalysis"/>',
                         '  <processor name="MyPfoAnalysis" type="PfoAnalysis">',
                         "    <!--Added by the calibration: every step reads the ROOT file of this processor-->"]
    assert added[3] == '    <parameter name="PfoCollection" type="string">PandoraPFOs</parameter>'
    assert added[-1] == "  </processor>" and len(added) == 3 + len(EXPECTED_PARAMETERS) + 1
    assert b'<processor name="MyDDMarlinPandora"/> \n    <processor name="MyPfoAnalysis"/>\n' in template
    assert b'  </processor>\n\n  <processor name="MyPfoAnalysis" type="PfoAnalysis">' in template


def test_in_cld_files_it_comes_after_the_pandora_group():
    template, _ = prepare_pfoanalysis(CLD_LIKE, CLD)
    assert b'  </group>\n\n  <processor name="MyPfoAnalysis" type="PfoAnalysis">' in template
    assert b'<processor name="MyDDMarlinPandora_${CalorimeterIntegrationTimeWindow}ns"/>\n' \
           b'    <processor name="MyPfoAnalysis"/>\n    <processor name="Output_REC"/>' in template


def test_the_final_file_differs_from_the_input_by_the_constants_and_the_processor():
    template, _ = prepare_pfoanalysis(CLD_LIKE, CLD)
    constants = {name: [v * 1.1 for v in value] if isinstance(value, list) else value * 1.1
                 for name, value in read_constants(CLD_LIKE, CONSTANTS, CLD).items()}
    final = render_final_steering(template, constants, CLD)
    removed, added = _diff(CLD_LIKE, final)
    assert len(removed) == len(CONSTANTS)
    assert all(any(f'name="{name}"' in line for line in removed) for name in CONSTANTS)
    assert len(added) == len(CONSTANTS) + 4 + len(EXPECTED_PARAMETERS) + 1   # entry, blank line, definition


def test_where_the_file_is_silent_pandoras_default_and_the_preset_names_are_taken():
    content = CLIC_LIKE.replace(b'<parameter name="PFOCollectionName" type="String">PandoraPFOs</parameter>', b"")
    content = content.replace(b'<parameter name="MCParticleCollections" type="StringVec">MCParticle</parameter>', b"")
    content = content.replace(b"<parameter name=\"MUONCollections\" type=\"StringVec\">\n      YokeBarrelCollection "
                              b"YokeEndcapCollection</parameter>", b"")
    content = content.replace(b"ECalBarrelCollection ECalEndcapCollection ECalPlugCollection ", b"EB EE")
    template, note = prepare_pfoanalysis(content, CLIC)
    parameters = _parameters(template, "MyPfoAnalysis")
    assert parameters["PfoCollection"] == "PandoraPFANewPFOs"          # what DDMarlinPandora writes by default
    assert parameters["MuonCollectionsSimCaloHit"] == "YokeBarrelCollection YokeEndcapCollection"
    assert parameters["ECalCollections"] == "ECALBarrel ECALEndcap"    # two inputs: two outputs
    assert parameters["ECalBarrelCollectionsSimCaloHit"] == "EB"
    assert parameters["ECalEndCapCollectionsSimCaloHit"] == "EE"
    assert "ECalOtherCollectionsSimCaloHit" not in parameters
    assert note.endswith("(the steering file does not name the MCParticleCollection, MuonSimCaloHits: the CLIC/CLD "
                         "names were taken)")


def test_without_a_single_muon_digitiser_pandoras_muon_hits_are_read():
    content = CLIC_LIKE.replace(b'<processor name="MyDDSimpleMuonDigi"/> ', b"")
    template, _ = prepare_pfoanalysis(content, CLIC)
    assert _parameters(template, "MyPfoAnalysis")["MuonCollections"] == "MUON"


def test_a_taken_name_is_not_reused():
    content = CLIC_LIKE.replace(b'<processor name="BeamCalReco3TeV" type=', b'<processor name="MyPfoAnalysis" type=')
    content = content.replace(b'<constant name="BCReco" value="3TeV" />', b'<constant name="BCReco" value="" />')
    content = content.replace(b'BeamCalReco${BCReco}', b'MyPfoAnalysis${BCReco}')
    template, note = prepare_pfoanalysis(content, CLIC)
    assert processor_name_of_type(template, "PfoAnalysis") == "MyPfoAnalysis_2"
    assert "'MyPfoAnalysis_2'" in note


def test_in_a_condition_or_a_group_entry_it_runs_right_after_pandora():
    conditional = CLIC_LIKE.replace(b'<processor name="MyDDMarlinPandora"/> ',
                                    b'<if condition="Config.Pandora">\n      <processor name="MyDDMarlinPandora"/>\n'
                                    b'    </if>')
    template, _ = prepare_pfoanalysis(conditional, CLIC)
    assert b'<processor name="MyDDMarlinPandora"/>\n      <processor name="MyPfoAnalysis"/>\n    </if>' in template
    grouped = CLD_LIKE.replace(b'<processor name="MyDDMarlinPandora_${CalorimeterIntegrationTimeWindow}ns"/>',
                               b'<group name="MyDDMarlinPandora"/>')
    template, _ = prepare_pfoanalysis(grouped, dict(CLD, DDPandoraPFANewProcessorName="MyDDMarlinPandora_400ns"))
    executed = list(parse_steering(template).executed)
    assert executed[executed.index("MyDDMarlinPandora_400ns") + 1] == "MyPfoAnalysis"
    assert b'<group name="MyDDMarlinPandora"/>\n    <processor name="MyPfoAnalysis"/>' in template


def test_a_users_processor_is_checked_and_kept():
    template, note = prepare_pfoanalysis(TEMPLATE, CLIC)
    assert template == TEMPLATE
    assert note == ("checked PfoAnalysis processor 'MyPfoAnalysis': it runs after 'MyDDMarlinPandora' and reads its "
                    "PFOs 'PandoraPFOs'; every step sets its CollectCalibrationDetails to 1 and its RootFile")


def _before_pandora(content):
    content = content.replace(b'<processor name="MyPfoAnalysis"/>', b"")
    digi = b'<processor name="MyDDCaloDigi"/>'
    return content.replace(digi, b'<processor name="MyPfoAnalysis"/>' + digi)


@pytest.mark.parametrize("change, message", [
    (lambda c: c.replace(b'<processor name="MyPfoAnalysis"/>', b""),
     'PfoAnalysis processor MyPfoAnalysis is defined but <execute> does not run it: add '
     '<processor name="MyPfoAnalysis"/>'),
    (_before_pandora, "runs before MyDDMarlinPandora, so it would see no PFOs"),
    (lambda c: c.replace(b'"PfoCollection" type="string">PandoraPFOs', b'"PfoCollection" type="string">X'),
     "reads the PFO collection 'X' but MyDDMarlinPandora writes 'PandoraPFOs': set its PfoCollection to PandoraPFOs"),
    (lambda c: c.replace(b'<group name="Output">',
                         b'<processor name="Other" type="PfoAnalysis"/><group name="Output">'),
     r"defines 2 PfoAnalysis processors \(MyPfoAnalysis, Other\): .* keep one"),
    (lambda c: c.replace(b'<processor name="MyDDMarlinPandora"/>', b""), "does not run it in <execute>"),
])
def test_a_users_processor_that_cannot_work_is_refused(change, message):
    with pytest.raises(SteeringError, match=message):
        prepare_pfoanalysis(change(TEMPLATE), CLIC)


def test_a_users_settings_of_the_processor_stay_in_the_final_file():
    content = TEMPLATE.replace(b'<parameter name="CollectCalibrationDetails" type="int">1</parameter>',
                               b'<parameter name="CollectCalibrationDetails" type="int">0</parameter>')
    template, _ = prepare_pfoanalysis(content, CLIC)
    step = render_steering(template, {}, CLIC, processor_parameters={
        ("MyPfoAnalysis", "CollectCalibrationDetails"): "1", ("MyPfoAnalysis", "RootFile"): "/w/pfo.root"})
    assert processor_parameter(step, "MyPfoAnalysis", "CollectCalibrationDetails") == "1"
    assert processor_parameter(render_final_steering(template, {}, CLIC), "MyPfoAnalysis",
                               "CollectCalibrationDetails") == "0"
