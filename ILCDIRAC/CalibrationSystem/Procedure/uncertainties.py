"""Where the statistical uncertainties of the constants and the statistics-limited phases are kept
in a step's metrics, and how the result of a calibration reads them back (physics.md §2.7).

Each step's metrics hold UNCERTAINTIES, {constant: uncertainty} of the constants the step
measured, and STATISTICS_LIMITED, {'stage/phase': note} of every phase so far that ended
statistics-limited, carried from step to step so that the last step's metrics hold them all.
"""
UNCERTAINTIES = "uncertainties"
STATISTICS_LIMITED = "statisticsLimited"


def step_statistics(previous_metrics, stage, phase_name, phase, outcome):
    """The metrics a step adds to its phase's: the uncertainties of its constants, and the
    statistics-limited phases so far (those of the step before, this phase's replaced by its own).

    :param dict previous_metrics: the metrics of the step before ({} for the first step)
    :param int stage: the step's stage
    :param str phase_name: its phase's name, for the note
    :param int phase: its phase
    :param outcome: the phase's outcome.PhaseOutcome
    :return: {UNCERTAINTIES: {...}, STATISTICS_LIMITED: {...}}
    """
    limited = dict(previous_metrics.get(STATISTICS_LIMITED) or {})
    key = f"{stage}/{phase}"
    limited.pop(key, None)
    if outcome.statistics_note:
        limited[key] = f"{phase_name} (stage {stage}): {outcome.statistics_note}"
    return {UNCERTAINTIES: dict(outcome.uncertainties), STATISTICS_LIMITED: limited}


def final_uncertainties(history):
    """{constant: uncertainty} of the final constants: each from the last step that measured it.

    :param list history: the steps, oldest first, each a dict with 'Metrics' (None for a step not analysed)
    :return: dict, in the shape of the constants (a list for a vector constant)
    """
    result = {}
    for step in history:
        result.update((step.get("Metrics") or {}).get(UNCERTAINTIES) or {})
    return result


def statistics_limitations(history):
    """The notes of the phases that ended statistics-limited, from the last analysed step.

    :param list history: the steps, oldest first, each a dict with 'Metrics'
    :return: list of str, in the order of the phases
    """
    analysed = [step["Metrics"] for step in history if step.get("Metrics")]
    return list((analysed[-1].get(STATISTICS_LIMITED) or {}).values()) if analysed else []
