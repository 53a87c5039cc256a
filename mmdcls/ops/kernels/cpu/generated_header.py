"""The C header generated from the Python side when the library is built.

:mod:`.loader` writes :func:`header_text` as :data:`HEADER_NAME` into the build's temporary
directory (``-I``); ``csrc/real_vec.h`` includes it, so every source sees: the scalar type
``REAL`` and symbol ``SUFFIX`` of the variant being compiled (:data:`.prototypes.REAL_TYPES`),
the constants of :mod:`.constants`, and the prototype of every entry point of every variant
(:data:`.prototypes.ENTRY_POINTS`), against which the compiler checks each definition. The text
is part of the library's cache key.
"""
from . import constants
from .prototypes import ENTRY_POINTS, REAL_TYPES, c_prototype

HEADER_NAME = 'mmdcls_generated.h'


def _variant_selection() -> list:
    """``REAL`` and ``SUFFIX`` for each variant, chosen by the macro defined on the command
    line (the variant without one last, as ``#else``)."""
    variants = sorted(REAL_TYPES.values(), key=lambda variant: not variant.define)
    if [bool(variant.define) for variant in variants].count(False) != 1:
        raise ValueError('exactly one REAL_TYPES variant must have no define, got '
                         f'{[variant.define for variant in variants]}')
    lines = []
    for index, variant in enumerate(variants):
        if variant.define:
            lines.append(f'#{"el" if index else ""}if defined({variant.define})')
        elif index:
            lines.append('#else')
        lines += [f'#define REAL {variant.c_type}', f'#define SUFFIX {variant.suffix}']
    return lines + ['#endif'] if len(variants) > 1 else lines


def defines() -> dict:
    """Macro name -> value of every constant of :mod:`.constants` the C code reads."""
    product = 1
    for radix in constants.FFT_RADICES:
        product *= radix
    macros = {
        'VECTOR_BYTES': constants.VECTOR_BYTES,
        # the C plan's radices, and their product for its check that it has a butterfly for each
        'FFT_RADICES': ', '.join(map(str, constants.FFT_RADICES)),
        'FFT_RADIX_PRODUCT': product
    }
    for name, code in {**constants.PROFILE_VERSIONS, **constants.BILINEAR_VERSIONS}.items():
        macros[f'VERSION_{name.upper()}'] = code
    return macros


def header_text() -> str:
    """The generated header's full text."""
    guard = HEADER_NAME.upper().replace('.', '_')
    lines = [
        f'/* {HEADER_NAME}: generated from mmdcls/ops/kernels/cpu/constants.py and',
        ' * prototypes.py when the library is built; not kept in the source tree. */',
        f'#ifndef {guard}', f'#define {guard}', '#include <stdint.h>', '', *_variant_selection(), ''
    ]
    lines += [f'#define {name} {value}' for name, value in defines().items()] + ['']
    for variant in REAL_TYPES.values():
        lines += [c_prototype(name, variant) for name in ENTRY_POINTS]
    return '\n'.join(lines + ['', f'#endif /* {guard} */', ''])
