"""Time of reading and writing a Marlin steering file with the TinyXML-faithful reader.

Why: a worker renders the steering file once per sample and step, and the service renders the
final file for every getResult and copy of the results; the reader is pure Python, so its cost on
real-sized files (clicReconstruction.xml is 113 kB, CLDReconstruction.xml 94 kB) and up to the
5 MB limit should be known. The files are the CLIC-like test fixture grown to the given size
with extra processor definitions (of the fixture's DDCaloDigi), so that the element count grows
with the size as in real files.

Run:  .venv/bin/python bench/steering.py [--quick]
"""
import argparse
import os
import platform
import re
import time
from pathlib import Path

from common import print_table

from ILCDIRAC.CalibrationSystem.Procedure.constants import CONSTANTS
from ILCDIRAC.CalibrationSystem.Procedure.pfoanalysis_processor import prepare_pfoanalysis
from ILCDIRAC.CalibrationSystem.Procedure.settings import create_settings
from ILCDIRAC.CalibrationSystem.Procedure.steering import (
    parse_steering, read_constants, render_final_steering, render_steering)

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "unit" / "fixtures" / "clic_like_steering.xml"
SIZES = (10**4, 10**5, 10**6, 5 * 10**6 - 10**4)
QUICK_SIZES = (10**4, 10**5)
SETTINGS = create_settings("CLIC")


def grown(size):
    """The fixture with copies of its DDCaloDigi definition (renamed) until it has about ``size`` bytes."""
    content = FIXTURE.read_bytes()
    digi = re.search(rb'  <processor name="MyDDCaloDigi" type="DDCaloDigi">.*?</processor>\n', content, re.S).group()
    copies = max(0, (size - len(content)) // len(digi))
    extra = b"".join(digi.replace(b'"MyDDCaloDigi"', b'"Copy%d"' % i) for i in range(copies))
    return content.replace(b"</marlin>", extra + b"</marlin>")


def best(function, repeats):
    """The shortest of ``repeats`` calls, in ms."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return f"{1000 * min(times):.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 kB and 100 kB only")
    sizes = QUICK_SIZES if parser.parse_args().quick else SIZES
    rows = []
    for size in sizes:
        content = grown(size)
        template = prepare_pfoanalysis(content, SETTINGS).steering_file
        constants = read_constants(template, CONSTANTS, SETTINGS)
        step_parameters = {"LCIOInputFiles": "/w/a.slcio /w/b.slcio", "SkipNEvents": 100, "MaxRecordNumber": 50}
        repeats = 5 if size <= 10**6 else 2
        rows.append((
            f"{len(content) / 1000:.0f} kB",
            str(len(list(parse_steering(content).document.root.iter()))),
            best(lambda: parse_steering(content), repeats),
            best(lambda: read_constants(template, CONSTANTS, SETTINGS), repeats),
            best(lambda: render_steering(template, constants, SETTINGS, step_parameters), repeats),
            best(lambda: render_final_steering(template, constants, SETTINGS), repeats),
            best(lambda: prepare_pfoanalysis(content, SETTINGS), repeats),
        ))
    print_table(("file", "elements", "parse ms", "read 13 constants ms", "render step ms", "render final ms",
                 "add PfoAnalysis ms"), rows)
    print(f"# nproc {len(os.sched_getaffinity(0))} ({platform.machine()}), Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.2f}; best of 5 calls (2 above 1 MB)")


if __name__ == "__main__":
    main()
