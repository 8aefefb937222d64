"""Site model and geometry: border line, sectors, sensors, CRS transforms.

Everything is vectorised (numpy in, numpy out) and works in the site's metric CRS.
"""

from geo._errors import GeoError, SiteError
from geo.border import Border
from geo.measure import polar_to_xy, slant_to_ground
from geo.projection import Projection
from geo.site import (
    DEFAULT_SITE_PATH,
    FibreCfg,
    MsvCfg,
    PatrolCfg,
    PolarPoint,
    SectorCfg,
    Site,
    SiteFile,
    ThermalCfg,
    default_site,
    load_site,
    parse_site,
)

__all__ = [
    "DEFAULT_SITE_PATH",
    "Border",
    "FibreCfg",
    "GeoError",
    "MsvCfg",
    "PatrolCfg",
    "PolarPoint",
    "Projection",
    "SectorCfg",
    "Site",
    "SiteError",
    "SiteFile",
    "ThermalCfg",
    "default_site",
    "load_site",
    "parse_site",
    "polar_to_xy",
    "slant_to_ground",
]
