"""matplotlib additions, applied when matplotlib is first imported.

- apply_rc: the settings in ../matplotlibrc (a font.family with a CJK
  fallback) unless the user has a matplotlibrc of their own or already chose
  a font; families that are not installed are dropped from the list, so a
  missing font never makes matplotlib warn on every text.
- patch_axes: Axes.bxp (what boxplot, pandas' and seaborn's box plots draw
  with) tags the artists it makes with the statistics they show, so the
  chart extraction reports exact quartiles and whiskers whatever the style
  (patch_artist or not, notches, orientation).
"""

import functools
import os

RC_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "matplotlibrc")
GENERIC = {"serif", "sans-serif", "sans", "monospace", "cursive", "fantasy"}

# Attribute put on every artist a bxp call made: a BoxRecord.
TAG = "_e2b_ci_box"


def apply_rc(font_manager):
    import matplotlib

    if _user_rc(matplotlib):
        return  # the user's own matplotlibrc wins
    params = matplotlib.rc_params_from_file(RC_FILE, fail_on_error=False,
                                            use_default_template=False)
    rc = matplotlib.rcParams
    families = params.get("font.family")
    if families is not None:
        if list(rc["font.family"]) != list(matplotlib.rcParamsDefault["font.family"]):
            families = None  # already chosen (rcParams, a style)
        else:
            installed = _installed_families(font_manager, families)
            families = [f for f in families
                        if f.lower() in GENERIC or f in installed]
    for key, value in params.items():
        if key == "font.family":
            if families:
                rc[key] = families
        else:
            rc[key] = value


def _installed_families(font_manager, wanted):
    """Font family names matplotlib can use. matplotlib caches its font
    list (~/.cache/matplotlib) and does not notice fonts installed later: if
    a wanted family is missing, font files the cache does not know are
    added (about 10 ms, and only while the cache is stale)."""
    fm = font_manager.fontManager
    names = {f.name for f in fm.ttflist}
    if all(w.lower() in GENERIC or w in names for w in wanted):
        return names
    known = {f.fname for f in fm.ttflist}
    for path in font_manager.findSystemFonts():
        if path not in known:
            try:
                fm.addfont(path)
            except Exception:
                pass
    return {f.name for f in fm.ttflist}


def _user_rc(matplotlib):
    """Whether the rc file in use is the user's (current directory,
    $MATPLOTLIBRC, matplotlib's config dir) rather than the installation's
    (mpl-data, or Debian's /etc/matplotlibrc)."""
    try:
        in_use = os.path.realpath(matplotlib.matplotlib_fname())
    except Exception:
        return False
    places = [os.path.join(os.getcwd(), "matplotlibrc"),
              os.path.join(matplotlib.get_configdir(), "matplotlibrc")]
    env = os.environ.get("MATPLOTLIBRC")
    if env:
        places += [env, os.path.join(env, "matplotlibrc")]
    return in_use in {os.path.realpath(p) for p in places}


class BoxRecord:
    """What one bxp call drew: its statistics, positions, orientation."""

    __slots__ = ("stats", "positions", "vertical")

    def __init__(self, stats, positions, vertical):
        self.stats = stats
        self.positions = positions
        self.vertical = vertical


def _record(args, kwargs, sig):
    bound = sig.bind_partial(*args, **kwargs).arguments
    stats = [dict(s) for s in bound.get("bxpstats") or ()]
    positions = bound.get("positions")
    if positions is None:
        positions = range(1, len(stats) + 1)
    orientation = bound.get("orientation")
    if orientation is not None:
        vertical = orientation != "horizontal"
    else:
        vert = bound.get("vert")
        vertical = True if vert is None else bool(vert)
    return BoxRecord(stats, [float(p) for p in positions], vertical)


def patch_axes(axes_module):
    import inspect

    cls = axes_module.Axes
    original = cls.bxp
    if getattr(original, "_e2b_ci_wrapped", False):
        return
    sig = inspect.signature(original)

    @functools.wraps(original)
    def bxp(*args, **kwargs):
        artists = original(*args, **kwargs)
        try:
            record = _record(args, kwargs, sig)
            for group in artists.values():
                for artist in group:
                    setattr(artist, TAG, record)
        except Exception:
            pass
        return artists

    bxp._e2b_ci_wrapped = True
    cls.bxp = bxp
