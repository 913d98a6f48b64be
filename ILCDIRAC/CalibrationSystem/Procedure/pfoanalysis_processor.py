"""The PfoAnalysis processor a calibration needs in its steering file: added when the file has
none, checked when it has one.

Why: every step of stages 1 and 3 reads the ROOT file of LCPandoraAnalysis's PfoAnalysis
processor (with CollectCalibrationDetails, its calorimeter-hit histograms), but the CLIC and CLD
reconstruction files have no PfoAnalysis processor; the reference added one from a
pfoAnalysis.xml at every step. Here it is added once, at creation, into the calibration's stored
steering file, so that the final file shows what ran. It is defined outside any <group> (so that
it takes no group parameter) and runs right after DDMarlinPandora. Its collections are those the
steering file's own processors write and read; where the file does not say, the PFOs are
DDMarlinPandora's default output and the rest the names of the CLIC and CLD reconstructions
(settings.PRESET_COLLECTIONS). Its parameters are those PfoAnalysis registers
(src/PfoAnalysis.cc); the muon histogram binning is the reference's (500 bins up to 0.002 GeV).

A user's own PfoAnalysis processor is kept as it is if it can work: exactly one, run after
DDMarlinPandora, reading the PFOs DDMarlinPandora writes. The steps always set its
CollectCalibrationDetails to 1 and its RootFile, so the final file keeps the user's values.
"""
from typing import NamedTuple

from ILCDIRAC.CalibrationSystem.Procedure.constants import role_processor_name
from ILCDIRAC.CalibrationSystem.Procedure.errors import SteeringError
from ILCDIRAC.CalibrationSystem.Procedure.settings import PRESET_COLLECTIONS
from ILCDIRAC.CalibrationSystem.Procedure.steering import check_calibration_processors, parse_steering
from ILCDIRAC.CalibrationSystem.Procedure.tinyxml_document import markup

PROCESSOR_TYPE = "PfoAnalysis"
PROCESSOR_NAME = "MyPfoAnalysis"
#: The RootFile written into the added processor; every step sets its own.
ROOT_FILE = "pfoAnalysis.root"
#: DDMarlinPandora's default PFOCollectionName (src/DDPandoraPFANewProcessor.cc).
PANDORA_DEFAULT_PFO_COLLECTION = "PandoraPFANewPFOs"
MUON_DIGITISER_TYPE = "DDSimpleMuonDigi"
_REGIONS = ("Barrel", "EndCap", "Other")


class PreparedSteering(NamedTuple):
    """The steering file a calibration stores (with its PfoAnalysis processor) and what was done to it."""

    steering_file: bytes
    note: str


def prepare_pfoanalysis(content, settings):
    """Add the PfoAnalysis processor the calibration needs, or check the one the file has.

    The DDCaloDigi and DDMarlinPandora processors the settings name must be defined and run
    (steering.check_calibration_processors).

    :param content: the user's steering file (bytes, str or steering.SteeringFile)
    :param dict settings: the calibration settings (processor names)
    :return: PreparedSteering: the file's bytes, with the processor added if it had none, and a
        note saying what was done; SteeringError saying what cannot work and what to do
    """
    steering = parse_steering(content)
    check_calibration_processors(steering, settings)
    pandora = role_processor_name("pandora", settings)
    found = [p.name for p in steering.processors.values() if p.type == PROCESSOR_TYPE]
    if len(found) > 1:
        raise SteeringError(f"steering file defines {len(found)} PfoAnalysis processors ({', '.join(found)}): the "
                            "calibration reads the ROOT file of one; keep one")
    if found:
        return PreparedSteering(steering.document.data, _check(steering, found[0], pandora))
    return _add(steering, pandora, settings)


def _values(steering, processor, name):
    """The values a processor is given for ``name``, or None if it is not set (or set empty)."""
    return steering.processor_values(processor, name) or None


def _pfo_collection(steering, pandora):
    return (_values(steering, pandora, "PFOCollectionName") or [PANDORA_DEFAULT_PFO_COLLECTION])[0]


def _check(steering, name, pandora):
    executed = list(steering.executed)
    if name not in executed:
        raise SteeringError(f"PfoAnalysis processor {name} is defined but <execute> does not run it: add "
                            f'<processor name="{name}"/> right after {pandora}, or remove its definition so that the '
                            "calibration adds its own")
    if executed.index(name) < executed.index(pandora):
        raise SteeringError(f"PfoAnalysis processor {name} runs before {pandora}, so it would see no PFOs: move its "
                            f"<execute> entry after {pandora}'s")
    writes = _pfo_collection(steering, pandora)
    reads = (_values(steering, name, "PfoCollection") or [""])[0]
    if reads != writes:
        reads = repr(reads) if reads else "none"
        raise SteeringError(f"PfoAnalysis processor {name} reads the PFO collection {reads} but {pandora} writes "
                            f"{writes!r}: set its PfoCollection to {writes}")
    return (f"checked PfoAnalysis processor '{name}': it runs after '{pandora}' and reads its PFOs '{writes}'; "
            "every step sets its CollectCalibrationDetails to 1 and its RootFile")


class _Collections:
    """The collections the added processor reads, noting those the steering file does not give."""

    def __init__(self, steering):
        self.steering, self.defaulted = steering, set()

    def get(self, processor, name, default_key, index=None):
        """The values of ``name`` of ``processor``, else the preset's (its ``index``-th only, if given)."""
        values = _values(self.steering, processor, name) if processor is not None else None
        if values is not None:
            return values
        self.defaulted.add(default_key)
        preset = PRESET_COLLECTIONS[default_key]
        preset = [preset] if isinstance(preset, str) else list(preset)
        return preset if index is None else preset[index:index + 1]


def _parameters(steering, pandora, settings):
    """(name, Marlin type, values) of the parameters of the added PfoAnalysis processor, and the
    kinds of collections taken from the presets."""
    digi = role_processor_name("digi", settings)
    collections = _Collections(steering)
    ecal_sim = collections.get(digi, "ECALCollections", "ECalSimCaloHits")
    hcal_sim = collections.get(digi, "HCALCollections", "HCalSimCaloHits")
    # DDCaloDigi writes the hits of its i-th input collection (at most 3) into its i-th output collection
    ecal = [collections.get(digi, f"ECALOutputCollection{i}", "ECalCaloHits", i)[0]
            for i in range(min(3, len(ecal_sim)))]
    hcal = [collections.get(digi, f"HCALOutputCollection{i}", "HCalCaloHits", i)[0]
            for i in range(min(3, len(hcal_sim)))]
    digitisers = [n for n in steering.executed if n in steering.processors
                  and steering.processors[n].type == MUON_DIGITISER_TYPE]
    digitiser = digitisers[0] if len(digitisers) == 1 else None
    muon = collections.get(digitiser, "MUONOutputCollection", "MuonCaloHits")[:1] if digitiser else \
        collections.get(pandora, "MuonCaloHitCollections", "MuonCaloHits")
    parameters = [
        ("PfoCollection", "string", [_pfo_collection(steering, pandora)]),
        ("MCParticleCollection", "string",
         collections.get(pandora, "MCParticleCollections", "MCParticleCollection")[:1]),
        ("CollectCalibrationDetails", "int", ["1"]),
        ("RootFile", "string", [ROOT_FILE]),
        ("NBinsMuonCaloHitEnergyHist", "int", ["500"]),
        ("XUpperValueMuonCaloHitEnergyHist", "float", ["0.002"]),
        ("ECalCollections", "StringVec", ecal),
        ("HCalCollections", "StringVec", hcal),
        ("MuonCollections", "StringVec", muon),
        ("ECalCollectionsSimCaloHit", "StringVec", ecal_sim),
        *((f"{calorimeter}{region}CollectionsSimCaloHit", "StringVec", _region(hits, i))
          for calorimeter, hits in (("ECal", ecal_sim), ("HCal", hcal_sim)) for i, region in enumerate(_REGIONS)),
        ("MuonCollectionsSimCaloHit", "StringVec",
         collections.get(digitiser, "MUONCollections", "MuonSimCaloHits")),
    ]
    return [(n, t, v) for n, t, v in parameters if v], sorted(collections.defaulted)


def _region(collections, index):
    """Sim-hit collections of barrel (0), endcap (1) and other (2), in DDCaloDigi's order."""
    return collections[index:index + 1] if index < 2 else collections[2:]


def _unique_name(steering):
    taken = set(steering.processors) | set(steering.executed) | {
        p.get("name") for g in steering.document.root.elements("group") for p in g.elements("processor")}
    name, number = PROCESSOR_NAME, 1
    while name in taken:
        number += 1
        name = f"{PROCESSOR_NAME}_{number}"
    return name


def _add(steering, pandora, settings):
    document = steering.document
    name = _unique_name(steering)
    parameters, defaulted = _parameters(steering, pandora, settings)
    definition = steering.processor(pandora)
    unit = document.indent_unit(definition.element).decode("latin-1")
    lines = [markup("processor", [("name", name), ("type", PROCESSOR_TYPE)], "")[:-len("</processor>")],
             f"{unit}<!--Added by the calibration: every step reads the ROOT file of this processor-->"]
    lines += [unit + markup("parameter", [("name", key), ("type", kind)], " ".join(values))
              for key, kind, values in parameters]
    lines.append("</processor>")
    anchor = definition.group if definition.group is not None else definition.element
    entry = steering.executed[pandora]
    edits = document.insert_elements(document.root, ["", "\n".join(lines)], after=anchor)
    edits += document.insert_elements(entry.parent, [markup("processor", [("name", name)])], after=entry)
    values = {key: " ".join(values) for key, _, values in parameters}
    hits = [values.get(f"{c}Collections", "") for c in ("ECal", "HCal", "Muon")]
    sim_hits = [values.get(f"{c}CollectionsSimCaloHit", "") for c in ("ECal", "HCalBarrel", "HCalEndCap", "HCalOther",
                                                                       "Muon")]
    note = (f"added PfoAnalysis processor '{name}' after '{pandora}' reading PFOs {values['PfoCollection']}, "
            f"MC particles {values['MCParticleCollection']}, calorimeter hits {' '.join(filter(None, hits))} and "
            f"simulated hits {' '.join(filter(None, sim_hits))}")
    if defaulted:
        note += f" (the steering file does not name the {', '.join(defaulted)}: the CLIC/CLD names were taken)"
    return PreparedSteering(document.apply(edits), note)
