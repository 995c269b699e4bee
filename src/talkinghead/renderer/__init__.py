"""Stage 6, render: decode motion frames into images by a mesh-driven dense warp.

How a frame is made (all batched in torch, on CPU or GPU), one module each:
1. ``field``: coefficient changes against the source, times the rig, move the 478 mesh
   points; the mesh spreads that motion over the face's pixels, beyond the outline it fades,
   and every pixel, lifted to 3D, turns with the head (``mesh``: the closed mesh, its
   rasterization and outline).
2. ``inversion``: the forward field inverted into a backward warp by Newton steps, coarse
   to fine, then one damped step at full resolution.
3. ``layers``: the person, warped (premultiplied by its matte), over a still background
   plate (the photo with the person inpainted), resampled by ``resample`` (OpenCV's remap on
   the CPU, ``grid_sample`` elsewhere).
4. ``eyes``: where the lids or the gaze changed, the eyes redrawn: closed-lid skin with a
   lash line, the iris moved over the photo's sclera.
5. ``mouth``: where the lips part, a mouth interior (the photo's own, or cavity, teeth fixed
   to the skull and the jaw, tongue) in the portrait's colours.
``decoder`` composes them into ``MeshWarpRenderer``, behind the ``Decoder`` protocol.

(Named ``renderer``, not ``render``: ``talkinghead.render`` is the public function.)
"""

from talkinghead.renderer.decoder import Decoder, MeshWarpRenderer

__all__ = ["Decoder", "MeshWarpRenderer"]
