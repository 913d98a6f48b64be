#!/usr/bin/env python
"""Generate synthetic calibration samples (gamma, mu-, kaon0L, zuds), a steering file and the truth

Local tool: needs no DIRAC configuration and no proxy. The output directory receives
gamma/10, mu-/10, kaon0L/50, zuds/91 (synthetic event files for the built-in detector model),
steering_file.xml (start constants moved away from the fixed points by --offset) and truth.json.

Example:
  $ dirac-calibration-generate-samples --output /tmp/calib-samples --events-per-file 200 --files-per-sample 10
"""
import json
import sys

from DIRAC.Core.Base.Script import Script

from ILCDIRAC.CalibrationSystem.Client.ScriptUtilities import helpRequested

_SWITCHES = {
    'output': ('output=', 'Output directory (required; must not already hold samples)'),
    'events-per-file': ('events-per-file=', 'Events per synthetic file (default 200)'),
    'files-per-sample': ('files-per-sample=', 'Files per sample (default 10)'),
    'offset': ('offset=', 'Relative distance of the start constants from the fixed points (default 0.15)'),
    'seed': ('seed=', 'Seed of the synthetic events (default: the detector truth default)'),
    'robust': ('robust', 'Robustness mode: photons leaking into the HCal, losses in the ECal gap, kaons leaking '
                         'out of the HCal (the cuts reject the leaks)'),
}


def _options(switches):
    """Turn the parsed switches into write_samples arguments; ValueError on bad values."""
    given = {name.lstrip('-'): value for name, value in switches}
    if not given.get('output'):
        raise ValueError('--output DIR is required')
    converters = {'events-per-file': int, 'files-per-sample': int, 'offset': float, 'seed': int}
    options = {'output': given['output'], 'events-per-file': 200, 'files-per-sample': 10, 'offset': 0.15,
               'seed': None, 'robust': 'robust' in given}
    for name, convert in converters.items():
        if name in given:
            try:
                options[name] = convert(given[name])
            except ValueError:
                raise ValueError(f'--{name} {given[name]!r} is not a valid {convert.__name__}') from None
    return options


@Script()
def main():
    from DIRAC import exit as dirac_exit, gLogger

    for short_and_long, help_text in _SWITCHES.values():
        Script.registerSwitch('', short_and_long, help_text)
    # No CS is needed: keep DIRAC's warnings that there is none off stdout, which carries the result;
    # but not for --help, which DIRAC prints at notice level.
    if not helpRequested(sys.argv[1:]):
        gLogger.setLevel('ERROR')
    try:
        switches, _ = Script.parseCommandLine(ignoreErrors=False)
    except SystemExit as stop:
        # DIRAC exits with 2 on an unknown option; this tool uses 1 for every usage error.
        dirac_exit(0 if stop.code in (0, None) else 1)
    from ILCDIRAC.CalibrationSystem.Simulation.detector_model import DetectorTruth
    from ILCDIRAC.CalibrationSystem.Simulation.synthetic_samples import write_samples

    try:
        options = _options(switches)
        truth_fields = {'robustness': options['robust']}
        if options['seed'] is not None:
            truth_fields['seed'] = options['seed']
        result = write_samples(options['output'], events_per_file=options['events-per-file'],
                               files_per_sample=options['files-per-sample'],
                               truth=DetectorTruth(**truth_fields), offset=options['offset'])
    except (ValueError, OSError) as error:
        gLogger.error('Cannot generate the samples:', str(error))
        dirac_exit(1)
    print(json.dumps(result, indent=1))
    dirac_exit(0)


if __name__ == '__main__':
    main()
