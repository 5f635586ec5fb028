"""PIL images become PNG results however the user "shows" them.

- a PIL image as the last expression or in display(img): PIL's own
  _repr_png_ (nothing to do here);
- img.show(): a PIL.ImageShow viewer (registered first) displays it instead
  of starting an image viewer program the sandbox does not have;
- img.save("chart.png") (a path, str or os.PathLike): saved as asked, then
  displayed, as E2B's reference does. Saves made by matplotlib (savefig goes
  through PIL) or by PIL itself are not displayed: the figure shows up as
  a figure already.

A display that fails is dropped silently: it never breaks the save or show.
"""

import functools
import os
import sys

# Modes PNG stores as they are; others are converted for display only.
PNG_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "P", "PA", "RGB", "RGBA"}
QUIET_CALLERS = ("matplotlib.", "PIL.")


def _display(image):
    try:
        if image.mode not in PNG_MODES:
            image = image.convert("RGBA" if "A" in image.mode else "RGB")
        from IPython.display import display

        display(image)
    except Exception:
        pass


def patch_image(image_module):
    cls = image_module.Image
    original = cls.save
    if getattr(original, "_e2b_ci_wrapped", False):
        return

    @functools.wraps(original)
    def save(self, fp, *args, **kwargs):
        result = original(self, fp, *args, **kwargs)
        if isinstance(fp, (str, os.PathLike)):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if not caller.startswith(QUIET_CALLERS):
                _display(self)
        return result

    save._e2b_ci_wrapped = True
    cls.save = save


def patch_imageshow(imageshow_module):
    class _IPythonViewer(imageshow_module.Viewer):
        """Shows an image as a display_data in the kernel's output."""

        def show(self, image, **options):
            _display(image)
            return 1

    for v in getattr(imageshow_module, "_viewers", ()):
        if type(v).__name__ == "_IPythonViewer":
            return
    imageshow_module.register(_IPythonViewer(), order=-1)
