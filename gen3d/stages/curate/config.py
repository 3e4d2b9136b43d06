"""Configuration of `gen3d data prepare` (dataclasses; YAML keys must match field names)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FilterConfig:
    """Quality thresholds; each failed check rejects the asset with the reason named in the comment.

    Lengths are in normalized units (longest side 1.9) unless they say otherwise."""

    min_faces: int = 12  # too_few_faces (after cleanup)
    max_faces: int = 2_000_000  # too_many_faces (checked while loading)
    min_area_ratio: float = 0.01  # tiny: surface area / (longest side^2) below this is a fragment or a line
    max_degenerate_share: float = 0.5  # degenerate: share of zero-area faces before cleanup
    flat_ratio: float = 0.02  # flat: smallest / largest principal extent of the surface
    max_aspect: float = 40.0  # extreme_aspect: largest / middle principal extent
    scene_min_components: int = 4  # scene: at least this many significant bodies ...
    scene_spread: float = 0.08  # ... whose gaps exceed this share of the longest side on average
    significant_component_share: float = 0.02  # a body counts for `scene` above this share of the area
    duplicate_distance: float = 0.03  # duplicate: fingerprint distance below this


@dataclass
class OutputConfig:
    """What is written per accepted asset."""

    surface_points: int = 81_920  # Direct3D samples 81,920 surface points with normals
    uniform_queries: int = 20_000  # uniform in [-1, 1]^3
    near_queries: int = 40_000  # surface samples + Gaussian offsets
    near_sigmas: tuple = (0.005, 0.05)  # offsets' standard deviations (half the near points each)
    render_views: int = 4  # 0 to skip rendering; orbit cameras at equal azimuth steps from 0
    render_res: int = 256
    render_elevation: float = 20.0  # degrees
    render_fov_deg: float = 40.0  # vertical field of view (CONVENTIONS default)
    # Orbit radius: 4.9 frames the whole canonical cube (circumsphere radius 0.95 sqrt(3) = 1.65;
    # 1.65 / sin(20 deg) = 4.81) from any direction, so no asset is cut off by the image border.
    # The CONVENTIONS default radius 2.5 fits only a sphere of radius 0.86 at this FOV.
    render_radius: float = 4.9
    render_backend: str = "auto"


@dataclass
class PrepareConfig:
    """The whole job; its hash guards resume (a changed config needs --force)."""

    filters: FilterConfig = field(default_factory=FilterConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    pose: str = "classifier"  # pose scorer: "classifier" (bundled weights), "priors", or "none"
    seed: int = 0  # mixed with each asset id, so results do not depend on order or executor
