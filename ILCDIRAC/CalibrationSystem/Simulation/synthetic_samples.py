"""Synthetic event files and a complete sample directory for runs without iLCSoft.

Why: a calibration is created from input files (one list per sample) and a Marlin steering file.
For the built-in detector model the input files only need to name *which* events they hold and
the detector truth they were "simulated" with; the events themselves are regenerated from that
identity (detector_model). A small JSON file per file stands where an .slcio file would be, so
the service, splitting and workers handle them exactly like real files.
"""
import json
import math
import os
from dataclasses import dataclass

from lxml import etree

from ILCDIRAC.CalibrationSystem.Procedure.pandora_settings import PACKAGE_TRAINING_SETTINGS
from ILCDIRAC.CalibrationSystem.Procedure.photon_likelihood import ENERGY_BIN_LOWER_EDGES
from ILCDIRAC.CalibrationSystem.Procedure.samples import NOMINAL_ENERGY, SAMPLE_TYPES
from ILCDIRAC.CalibrationSystem.Simulation.detector_model import COLUMN_SAMPLES, HCAL_REGIONS, INT_MAX, DetectorTruth
from ILCDIRAC.CalibrationSystem.Simulation.fixed_points import fixed_point, phase_fixed_points

FORMAT = 'ilcdirac-synthetic-events/1'
TRUTH_FORMAT = 'ilcdirac-synthetic-truth/1'
SUFFIX = '.synthetic.json'
MAX_FILE_BYTES = 1024 * 1024
_KEYS = ('format', 'sample', 'energy', 'firstEvent', 'events', 'truth')

#: Directory (particle name as in production paths, energy) and file prefix per sample type.
SAMPLE_DIRECTORIES = {
    'gamma': ('gamma', '10', 'gamma_10GeV'),
    'muon': ('mu-', '10', 'mu-_10GeV'),
    'kaon': ('kaon0L', '50', 'kaon0L_50GeV'),
    'zuds': ('zuds', '91', 'zuds_91GeV'),
}

DIGI_PROCESSOR = 'MyDDCaloDigi'
PANDORA_PROCESSOR = 'MyDDMarlinPandora'
#: The PandoraSettings the steering file names, relative to the sample directory (as clicConfig has it).
DEFAULT_PANDORA_SETTINGS = os.path.join('PandoraSettings', 'PandoraSettingsDefault.xml')

#: PandoraSettings with the structure of the configuration packages' (a leading comment, <pandora>,
#: the PhotonReconstruction algorithm whose HistogramFile the calibration sets); the built-in
#: model reads only that algorithm. Default: reads the packaged likelihood; training: makes one.
_PANDORA_SETTINGS = """<!-- Pandora settings xml file of the synthetic CLIC-like detector ({purpose}) -->

<pandora>
    <!-- GLOBAL SETTINGS -->
    <IsMonitoringEnabled>false</IsMonitoringEnabled>
    <ShouldDisplayAlgorithmInfo>false</ShouldDisplayAlgorithmInfo>

    <!-- Standalone photon clustering -->
    <algorithm type = "PhotonReconstruction">
        <algorithm type = "ConeClustering" description = "PhotonClusterFormation">
            <ShouldUseOnlyECalHits>true</ShouldUseOnlyECalHits>
        </algorithm>
        <ClusterListName>PhotonClusters</ClusterListName>
        <ReplaceCurrentClusterList>{replace}</ReplaceCurrentClusterList>
{histograms}
    </algorithm>
</pandora>
"""
_EDGES = ' '.join(f'{edge:g}' for edge in ENERGY_BIN_LOWER_EDGES)
_LIKELIHOOD = f'PandoraLikelihoodData{len(ENERGY_BIN_LOWER_EDGES)}EBin.xml'
DEFAULT_SETTINGS_CONTENT = _PANDORA_SETTINGS.format(purpose='default', replace='false', histograms=f"""\
        <ShouldMakePdfHistograms>false</ShouldMakePdfHistograms>
        <HistogramFile>PandoraSettings/{_LIKELIHOOD}</HistogramFile>""")
TRAINING_SETTINGS_CONTENT = _PANDORA_SETTINGS.format(purpose='photon-likelihood training', replace='true',
                                                     histograms=f"""\
        <ShouldMakePdfHistograms>true</ShouldMakePdfHistograms>
        <ShouldDrawPdfHistograms>false</ShouldDrawPdfHistograms>
        <EnergyBinLowerEdges>{_EDGES}</EnergyBinLowerEdges>
        <NEnergyBins>{len(ENERGY_BIN_LOWER_EDGES)}</NEnergyBins>
        <HistogramFile>{_LIKELIHOOD}</HistogramFile>""")

#: Direction and size (in units of ``offset``) of the start values relative to the fixed points.
#: The hadronic scales move in opposite directions so that x + y stays inside the CSM's 3σ band.
_OFFSET_SCALE = {
    'CalibrECAL': 1.0,
    'ECALEndcapCorrectionFactor': -0.5,
    'CalibrHCALBarrel': 1.0,
    'CalibrHCALEndcap': -1.0,
    'CalibrHCALOther': 1.0,
    'ECalToMipCalibration': 1.0,
    'HCalToMipCalibration': -1.0,
    'MuonToMipCalibration': 1.0,
    'ECalToEMGeVCalibration': -1.0,
    'HCalToEMGeVCalibration': -1.0,
    'ECalToHadGeVCalibrationBarrel': -1.0,
    'ECalToHadGeVCalibrationEndCap': -1.0,
    'HCalToHadGeVCalibration': 1.0,
}


@dataclass(frozen=True)
class EventFile:
    """One synthetic input file: events [first_event, first_event + events) of ``sample``."""

    path: str
    sample: str
    energy: float
    first_event: int
    events: int
    truth: DetectorTruth


def is_synthetic_file(path):
    """True for paths named like a synthetic event file (``*.synthetic.json``).

    :param path: a file name
    :return: bool
    """
    return isinstance(path, str) and os.path.basename(path).endswith(SUFFIX)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def read_event_file(path):
    """Read and validate a synthetic event file.

    :param str path: the file
    :return: EventFile; ValueError saying what is wrong otherwise
    """
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise ValueError(f"Synthetic event file {path} has {size} bytes, more than the limit of "
                             f"{MAX_FILE_BYTES}; it is not a synthetic event file")
        with open(path, 'rb') as handle:
            data = json.loads(handle.read())
    except OSError as error:
        raise ValueError(f"Cannot read synthetic event file {path}: {error.strerror or error}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"Synthetic event file {path} is not valid JSON: {error}") from None
    if not isinstance(data, dict) or set(data) != set(_KEYS):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"Synthetic event file {path} must be a JSON object with exactly the keys "
                         f"{list(_KEYS)}, found {found}")
    if data['format'] != FORMAT:
        raise ValueError(f"Synthetic event file {path} has format {data['format']!r}, expected {FORMAT!r}")
    sample = data['sample']
    if sample not in SAMPLE_TYPES:
        raise ValueError(f"Synthetic event file {path}: sample {sample!r} is not one of {list(SAMPLE_TYPES)}")
    energy = data['energy']
    if isinstance(energy, bool) or not isinstance(energy, (int, float)) or energy != NOMINAL_ENERGY[sample]:
        raise ValueError(f"Synthetic event file {path}: energy {energy!r} does not match the "
                         f"{sample} sample energy {NOMINAL_ENERGY[sample]}")
    first, events = data['firstEvent'], data['events']
    if not (_is_int(first) and _is_int(events) and first >= 0 and events > 0 and first + events <= INT_MAX):
        raise ValueError(f"Synthetic event file {path}: firstEvent ({first!r}) must be an integer >= 0 and "
                         f"events ({events!r}) an integer > 0, together within {INT_MAX}")
    try:
        truth = DetectorTruth.from_dict(data['truth'])
    except (TypeError, ValueError) as error:
        raise ValueError(f"Synthetic event file {path}: invalid detector truth: {error}") from None
    return EventFile(path, sample, float(energy), first, events, truth)


def _event_file_content(sample, first_event, events, truth):
    return json.dumps({'format': FORMAT, 'sample': sample, 'energy': NOMINAL_ENERGY[sample],
                       'firstEvent': first_event, 'events': events, 'truth': truth.to_dict()},
                      indent=1) + '\n'


def initial_constants(truth, offset):
    """Start values of all calibration constants: the stage-1 fixed points (default settings)
    moved by ``offset``.

    :param DetectorTruth truth: the detector
    :param float offset: relative offset; the direction of each constant is _OFFSET_SCALE's
    :return: {constant: value}
    """
    constants = {}
    for sample in COLUMN_SAMPLES:
        for name, value in fixed_point(truth, sample).items():
            factor = 1.0 + _OFFSET_SCALE[name] * offset
            constants[name] = [v * factor for v in value] if isinstance(value, list) else value * factor
    return {name: constants[name] for name in _OFFSET_SCALE}


def truth_record(truth, offset, constants, events_per_file, files_per_sample):
    """Content of truth.json: what an end-to-end run must reproduce.

    'fixedPoints': stage-1 fixed points by sample (fixed_points.fixed_point, default settings).
    'phaseFixedPoints': {stage: {phase: {constant: value}}} for stages 1 and 3
    (phase_fixed_points). 'finalConstants': the stage-3 fixed points of all constants, which a
    complete run approaches; where it ends, and how many iterations each phase takes, depend on
    the settings and the start values (fixed_points.expected_run). 'directionCorrectionMeans' (D
    per HCal region) and 'hcalSimMipMpvs' (sim MIP MPV per region; the peaks P are the bin centres
    holding them) are the expected inputs of the CalibrHCALOther formula; 'calibrHcalRingTrue' is
    C_R,true.

    :param DetectorTruth truth: the detector
    :param float offset: of the start values
    :param dict constants: the start values (initial_constants)
    :param int events_per_file: events per file
    :param int files_per_sample: files per sample
    :return: dict, JSON-able
    """
    phases = phase_fixed_points(truth)
    return {
        'format': TRUTH_FORMAT,
        'truth': truth.to_dict(),
        'fixedPoints': {sample: fixed_point(truth, sample) for sample in COLUMN_SAMPLES},
        'phaseFixedPoints': {str(stage): {str(phase): values for phase, values in by_phase.items()}
                             for stage, by_phase in phases.items()},
        'finalConstants': {name: value for values in phases[3].values() for name, value in values.items()},
        'calibrHcalRingTrue': truth.calibr_hcal_ring,
        'directionCorrectionMeans': {region: truth.direction_correction_mean(region) for region in HCAL_REGIONS},
        'hcalSimMipMpvs': dict(zip(HCAL_REGIONS, truth.hcal_sim_mpvs)),
        'initialConstants': constants, 'offset': offset,
        'eventsPerFile': events_per_file, 'filesPerSample': files_per_sample,
    }


def _format(value):
    return ' '.join(repr(float(v)) for v in value) if isinstance(value, list) else repr(float(value))


def _processor(root, name, kind, parameters):
    processor = etree.SubElement(root, 'processor', name=name, type=kind)
    for key, (param_type, value, as_attribute) in parameters.items():
        element = etree.SubElement(processor, 'parameter', name=key, type=param_type)
        if as_attribute:
            element.set('value', value)
        else:
            element.text = f' {value} '
    return processor


def steering_file_content(constants, input_files, pandora_settings):
    """A Marlin steering file with the processors the calibration changes (physics.md §2.6).

    Like the real CLIC and CLD reconstruction files, it has no PfoAnalysis processor: the
    calibration adds one at creation. Most parameters are element text, a few use the ``value``
    attribute, as real steering files do.

    :param dict constants: the calibration constants to write
    :param input_files: the LCIOInputFiles
    :param str pandora_settings: the PandoraSettings file DDMarlinPandora reads
    :return: bytes of the XML file
    """
    c = {name: _format(value) for name, value in constants.items()}
    root = etree.Element('marlin')
    root.append(etree.Comment(' Synthetic CLIC-like reconstruction: DDCaloDigi -> DDMarlinPandora '))
    execute = etree.SubElement(root, 'execute')
    for name in ('InitDD4hep', DIGI_PROCESSOR, PANDORA_PROCESSOR):
        etree.SubElement(execute, 'processor', name=name)
    glob = etree.SubElement(root, 'global')
    for key, value in (('LCIOInputFiles', ' '.join(input_files)), ('MaxRecordNumber', '0'),
                       ('SkipNEvents', '0'), ('SupressCheck', 'false'), ('Verbosity', 'MESSAGE'),
                       ('RandomSeed', '1234567890')):
        etree.SubElement(glob, 'parameter', name=key).text = f' {value} '
    _processor(root, 'InitDD4hep', 'InitializeDD4hep', {
        'DD4hepXMLFile': ('string', '$lcgeo_DIR/CLIC/compact/CLIC_o3_v14/CLIC_o3_v14.xml', False),
    })
    _processor(root, DIGI_PROCESSOR, 'DDCaloDigi', {
        'ECALCollections': ('StringVec', 'ECalBarrelCollection ECalEndcapCollection ECalPlugCollection', False),
        'ECALOutputCollection0': ('string', 'ECALBarrel', False),
        'ECALOutputCollection1': ('string', 'ECALEndcap', False),
        'ECALOutputCollection2': ('string', 'ECALOther', False),
        'HCALCollections': ('StringVec', 'HCalBarrelCollection HCalEndcapCollection HCalRingCollection', False),
        'HCALOutputCollection0': ('string', 'HCALBarrel', False),
        'HCALOutputCollection1': ('string', 'HCALEndcap', False),
        'HCALOutputCollection2': ('string', 'HCALOther', False),
        'RelationOutputCollection': ('string', 'RelationCaloHit', False),
        'CalibrECAL': ('FloatVec', c['CalibrECAL'], False),
        'ECALEndcapCorrectionFactor': ('float', c['ECALEndcapCorrectionFactor'], True),
        'ECALLayers': ('IntVec', '41 100', False),
        'CalibrHCALBarrel': ('FloatVec', c['CalibrHCALBarrel'], False),
        'CalibrHCALEndcap': ('FloatVec', c['CalibrHCALEndcap'], False),
        'CalibrHCALOther': ('FloatVec', c['CalibrHCALOther'], False),
        'HCALLayers': ('IntVec', '100', False),
        'ECALThreshold': ('float', '5e-05', False),
        'ECALThresholdUnit': ('string', 'GeV', False),
        'HCALThreshold': ('FloatVec', '0.25', False),
        'HCALThresholdUnit': ('string', 'MIP', False),
        'CalibECALMIP': ('float', '0.0001', False),
        'CalibHCALMIP': ('float', '0.0001', False),
        'IfDigitalEcal': ('int', '0', False),
        'IfDigitalHcal': ('int', '0', False),
        'UseEcalTiming': ('int', '1', False),
        'UseHcalTiming': ('int', '1', False),
        'ECALBarrelTimeWindowMax': ('float', '10', False),
        'ECALEndcapTimeWindowMax': ('float', '10', False),
        'HCALBarrelTimeWindowMax': ('float', '10', True),
        'HCALEndcapTimeWindowMax': ('float', '10', False),
        'ECALCorrectTimesForPropagation': ('int', '1', False),
        'HCALCorrectTimesForPropagation': ('int', '1', False),
        'ECALDeltaTimeHitResolution': ('float', '10', False),
        'HCALDeltaTimeHitResolution': ('float', '10', False),
        'ECAL_apply_realistic_digi': ('int', '0', False),
        'HCAL_apply_realistic_digi': ('int', '0', False),
    })
    _processor(root, PANDORA_PROCESSOR, 'DDPandoraPFANewProcessor', {
        'PandoraSettingsXmlFile': ('String', pandora_settings, False),
        'TrackCollections': ('StringVec', 'SiTracks_Refitted', False),
        'ECalCaloHitCollections': ('StringVec', 'ECALBarrel ECALEndcap ECALOther', False),
        'HCalCaloHitCollections': ('StringVec', 'HCALBarrel HCALEndcap HCALOther', False),
        'LCalCaloHitCollections': ('StringVec', 'LCAL', False),
        'LHCalCaloHitCollections': ('StringVec', 'LHCAL', False),
        'MuonCaloHitCollections': ('StringVec', 'MUON', False),
        'MCParticleCollections': ('StringVec', 'MCParticle', False),
        'RelCaloHitCollections': ('StringVec', 'RelationCaloHit RelationMuonHit', False),
        'RelTrackCollections': ('StringVec', 'SiTracks_Refitted_Relation', False),
        'ClusterCollectionName': ('String', 'PandoraClusters', False),
        'PFOCollectionName': ('String', 'PandoraPFOs', False),
        'ECalToMipCalibration': ('float', c['ECalToMipCalibration'], False),
        'HCalToMipCalibration': ('float', c['HCalToMipCalibration'], False),
        'MuonToMipCalibration': ('float', c['MuonToMipCalibration'], False),
        'ECalMipThreshold': ('float', '0.5', False),
        'HCalMipThreshold': ('float', '0.3', False),
        'ECalToEMGeVCalibration': ('float', c['ECalToEMGeVCalibration'], False),
        'HCalToEMGeVCalibration': ('float', c['HCalToEMGeVCalibration'], False),
        'ECalToHadGeVCalibrationBarrel': ('float', c['ECalToHadGeVCalibrationBarrel'], False),
        'ECalToHadGeVCalibrationEndCap': ('float', c['ECalToHadGeVCalibrationEndCap'], False),
        'HCalToHadGeVCalibration': ('float', c['HCalToHadGeVCalibration'], True),
        'MaxHCalHitHadronicEnergy': ('float', '10000000', False),
        'MaxClusterEnergyToApplySoftComp': ('float', '2000', False),
        'DigitalMuonHits': ('int', '0', False),
        'AbsorberRadLengthECal': ('float', '0.2854', False),
        'AbsorberIntLengthECal': ('float', '0.0101', False),
        'AbsorberRadLengthHCal': ('float', '0.0569', False),
        'AbsorberIntLengthHCal': ('float', '0.006', False),
        'AbsorberRadLengthOther': ('float', '0.0569', False),
        'AbsorberIntLengthOther': ('float', '0.006', False),
    })
    return etree.tostring(root, xml_declaration=True, encoding='utf-8', pretty_print=True)


def _check_arguments(events_per_file, files_per_sample, truth, offset):
    if not _is_int(events_per_file) or events_per_file < 1:
        raise ValueError(f"events_per_file must be an integer >= 1, got {events_per_file!r}")
    if not _is_int(files_per_sample) or files_per_sample < 1:
        raise ValueError(f"files_per_sample must be an integer >= 1, got {files_per_sample!r}")
    if events_per_file * files_per_sample > INT_MAX:
        raise ValueError(f"{events_per_file} x {files_per_sample} events per sample exceed {INT_MAX}")
    if not isinstance(truth, DetectorTruth):
        raise ValueError(f"truth must be a DetectorTruth, got {type(truth).__name__}")
    if isinstance(offset, bool) or not isinstance(offset, (int, float)) or not 0.0 <= offset < 0.5 \
            or not math.isfinite(offset):
        raise ValueError(f"offset must be a number in [0, 0.5), got {offset!r}")


def write_samples(output_dir, events_per_file=200, files_per_sample=10, truth=DetectorTruth(), offset=0.15):
    """Create the four sample directories, a steering file, its PandoraSettings and truth.json under ``output_dir``.

    Layout: DIR/gamma/10, DIR/mu-/10, DIR/kaon0L/50, DIR/zuds/91 (event files numbered globally
    per sample), DIR/steering_file.xml (start constants = fixed points moved by ``offset``; it
    names DIR/PandoraSettings/PandoraSettingsDefault.xml by its absolute path, so that workers
    find it), DIR/CalibrationPandoraSettings/PandoraSettingsPhotonTraining.xml (the photon
    training's settings, where createCalibration looks for them), DIR/truth.json. Existing
    outputs are not overwritten (ValueError): stale files with other event numbers or another
    truth would silently join a sample.

    :param output_dir: the directory to write into
    :param int events_per_file: events per file
    :param int files_per_sample: files per sample
    :param DetectorTruth truth: the detector
    :param float offset: of the start constants from the fixed points
    :return: {'inputFiles': {sample: [paths]}, 'numberOfEventsPerFile': {sample: n},
        'directories': {sample: dir}, 'steeringFile': path, 'pandoraSettingsFile': path,
        'photonTrainingSettingsFile': path, 'truthFile': path}
    """
    _check_arguments(events_per_file, files_per_sample, truth, offset)
    output_dir = os.path.abspath(output_dir)
    steering_path = os.path.join(output_dir, 'steering_file.xml')
    truth_path = os.path.join(output_dir, 'truth.json')
    settings_paths = {os.path.join(output_dir, DEFAULT_PANDORA_SETTINGS): DEFAULT_SETTINGS_CONTENT,
                      os.path.join(output_dir, PACKAGE_TRAINING_SETTINGS): TRAINING_SETTINGS_CONTENT}
    directories = {sample: os.path.join(output_dir, particle, energy)
                   for sample, (particle, energy, _) in SAMPLE_DIRECTORIES.items()}
    clashes = [path for path in (steering_path, truth_path, *settings_paths, *directories.values())
               if os.path.lexists(path)]
    if clashes:
        raise ValueError(f"Refusing to overwrite existing {clashes}; choose a new or empty output directory")

    width = max(3, len(str(files_per_sample - 1)))
    input_files = {}
    for sample, directory in directories.items():
        os.makedirs(directory)
        prefix = SAMPLE_DIRECTORIES[sample][2]
        input_files[sample] = []
        for index in range(files_per_sample):
            path = os.path.join(directory, f'{prefix}_{index:0{width}d}{SUFFIX}')
            with open(path, 'w', encoding='utf-8') as handle:
                handle.write(_event_file_content(sample, index * events_per_file, events_per_file, truth))
            input_files[sample].append(path)

    for path, content in settings_paths.items():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(content)
    default_settings, training_settings = settings_paths
    constants = initial_constants(truth, offset)
    with open(steering_path, 'wb') as handle:
        handle.write(steering_file_content(constants, input_files['gamma'], default_settings))
    with open(truth_path, 'w', encoding='utf-8') as handle:
        json.dump(truth_record(truth, offset, constants, events_per_file, files_per_sample), handle, indent=1)
        handle.write('\n')
    return {'inputFiles': input_files,
            'numberOfEventsPerFile': {sample: events_per_file for sample in directories},
            'directories': directories, 'steeringFile': steering_path, 'pandoraSettingsFile': default_settings,
            'photonTrainingSettingsFile': training_settings, 'truthFile': truth_path}
