"""Build the Cython extensions in cext/ into the intercom.cext package.

The extensions link against the system's libspeexdsp (Debian: libspeexdsp-dev)
spandsp for G.722 (libspandsp-dev) and libopus (libopus-dev); pkg-config supplies the flags.
"""
import shlex
import subprocess

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup


def pkg_config(lib: str) -> tuple[list[str], list[str]]:
    try:
        cflags = subprocess.run(["pkg-config", "--cflags", lib], check=True,
                                capture_output=True, text=True).stdout
        libs = subprocess.run(["pkg-config", "--libs", lib], check=True,
                              capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return [], [f"-l{lib}"]
    return shlex.split(cflags), shlex.split(libs)


speex_cflags, speex_libs = pkg_config("speexdsp")
opus_cflags, opus_libs = pkg_config("opus")
spandsp_cflags, spandsp_libs = pkg_config("spandsp")
common = dict(
    include_dirs=[numpy.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-function",
                        "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
)
extensions = [
    Extension("intercom.cext.g711", ["cext/g711.pyx"], **common),
    Extension("intercom.cext.rtp", ["cext/rtp.pyx"], **common),
    Extension("intercom.cext.rtcp", ["cext/rtcp.pyx"], **common),
    Extension("intercom.cext.rtpio", ["cext/rtpio.pyx"], **common),
    Extension("intercom.cext.h264", ["cext/h264.pyx"], **common),
    Extension("intercom.cext.dtmf", ["cext/dtmf.pyx"], **common),
    Extension("intercom.cext.plc", ["cext/plc.pyx"], **common),
    Extension("intercom.cext.jitter", ["cext/jitter.pyx"], **common),
    Extension("intercom.cext.level", ["cext/level.pyx"], **common),
] + [
    Extension(f"intercom.cext.{name}", [f"cext/{name}.pyx"], extra_link_args=speex_libs,
              **{**common, "extra_compile_args": common["extra_compile_args"] + speex_cflags})
    for name in ("resample", "echo", "speexjb")
] + [
    Extension("intercom.cext.opus", ["cext/opus.pyx"], extra_link_args=opus_libs,
              **{**common, "extra_compile_args": common["extra_compile_args"] + opus_cflags}),
    Extension("intercom.cext.g722", ["cext/g722.pyx"], extra_link_args=spandsp_libs,
              **{**common, "extra_compile_args": common["extra_compile_args"] + spandsp_cflags}),
]

setup(ext_modules=cythonize(extensions, language_level=3, include_path=["cext", "."],
                            compiler_directives={"boundscheck": False, "wraparound": False}))
