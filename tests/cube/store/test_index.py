"""The GeoParquet patch index: footprints that map back onto the patches, the cube's labels, dates and coverage."""

from __future__ import annotations

import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
import shapely
from pyproj import Transformer
from rasterio.warp import transform_bounds

from cube import convert, open_cube
from cube.store.index import patch_index_table, read_index, write_index
from cube.store.store import INDEX_FILE, CubeStore
from cube.store.views import patch_bounds


@pytest.fixture(scope="module")
def grown_cube(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny_root`` converted one ROI first, then grown by the other (each conversion runs the cloud pass)."""
    cube = tmp_path_factory.mktemp("index") / "cube.zarr"
    convert(tiny_root, cube, rois=["ROIs1868/17"], workers=1, progress=False)
    assert len(read_index(cube)) == 3
    convert(tiny_root, cube, workers=1, progress=False)
    return cube


def test_the_cloud_pass_writes_an_index_that_follows_the_cube(grown_cube: Path) -> None:
    ds = open_cube(grown_cube, chunks=None)  # opening the grown cube (consolidated beside the file) works
    table = gpd.read_parquet(grown_cube / INDEX_FILE)  # a plain GeoParquet file: what QGIS opens
    assert table.crs.to_epsg() == 4326 and table.geometry.name == "geometry"
    assert len(table) == ds.sizes["patch"] == 6
    assert table.patch.tolist() == list(range(6))
    assert table.roi_group.tolist() == ds.roi_group.values.tolist()
    assert table.roi.tolist() == ds.roi.values.tolist() and table.patch_id.tolist() == ds.patch_id.values.tolist()
    assert table.split.tolist() == ds.split.values.tolist()
    assert table.region.tolist() == ds.region.values.tolist()
    assert table.epsg.tolist() == ds.epsg.values.tolist()
    detectors = ds.attrs["cloud_detectors"].split()
    assert [c for c in table.columns if c.startswith("coverage_")] == [f"coverage_{d}" for d in detectors]
    valid = ds.valid.sel(modality="S2").values
    for row, patch in zip(table.itertuples(), range(6), strict=True):
        dates = ds.S2_date.values[patch][valid[patch]].astype("datetime64[D]").tolist()
        assert list(row.s2_dates) == dates and (row.first_s2_date, row.last_s2_date) == (min(dates), max(dates))
        assert row.n_valid_s2 == valid[patch].sum()
        for d in detectors:
            expected = ds.coverage.sel(detector=d).values[patch][valid[patch]].mean()
            assert getattr(row, f"coverage_{d}") == pytest.approx(expected, rel=1e-6)
    schema = pq.read_schema(grown_cube / INDEX_FILE)
    assert str(schema.field("s2_dates").type) == "list<element: date32[day]>"
    assert b"geo" in schema.metadata


def test_footprints_project_back_onto_the_patch_bounds_and_match_the_geotiffs(grown_cube: Path) -> None:
    ds = open_cube(grown_cube, chunks=None)
    table, bounds = read_index(grown_cube), patch_bounds(ds)
    for row in table.itertuples():
        back = Transformer.from_crs(4326, row.epsg, always_xy=True)
        x, y = back.transform(*np.asarray(row.geometry.exterior.coords).T)
        np.testing.assert_allclose([x.min(), y.min(), x.max(), y.max()], bounds[row.patch], atol=1e-3)
        np.testing.assert_allclose(shapely.from_wkt(row.footprint_utm).bounds, bounds[row.patch], atol=1e-3)
        s2 = ds.S2_path.values[row.patch][0]
        with rasterio.open(Path(ds.attrs["source_root"]) / s2) as src:
            assert src.crs.to_epsg() == row.epsg
            np.testing.assert_allclose(row.geometry.bounds, transform_bounds(src.crs, 4326, *src.bounds), atol=1e-6)
    found = table[table.intersects(table.geometry.iloc[4].centroid)]  # find a patch by place
    assert found.patch.tolist() == [4]


def test_write_to_a_file_is_whole_and_bad_places_fail(grown_cube: Path, tmp_path: Path) -> None:
    out = write_index(grown_cube, tmp_path / "patches.parquet")
    assert Path(out).is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["patches.parquet"]
    assert gpd.read_parquet(out).equals(read_index(grown_cube))
    with pytest.raises(FileNotFoundError):
        write_index(grown_cube, tmp_path / "missing" / "patches.parquet")
    with pytest.raises(IsADirectoryError):
        write_index(grown_cube, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["patches.parquet"]  # no temporary file left


def test_rewriting_into_the_cube(grown_cube: Path, tmp_path: Path) -> None:
    cube = shutil.copytree(grown_cube, tmp_path / "cube.zarr")
    (cube / INDEX_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="no patch index"):
        read_index(cube)
    assert write_index(cube) == str(cube / INDEX_FILE)
    assert len(read_index(cube)) == 6 and not list(cube.glob("*.partial"))
    assert not (cube / "writer_lock").exists()


def test_a_cube_without_cloud_pass_has_no_index(tiny_root: Path, tmp_path: Path) -> None:
    convert(tiny_root, tmp_path / "cube.zarr", clouds=(), workers=1, progress=False)
    assert not (tmp_path / "cube.zarr" / INDEX_FILE).exists()
    with pytest.raises(ValueError, match="no finished cloud pass"):
        patch_index_table(open_cube(tmp_path / "cube.zarr", chunks=None))
    with pytest.raises(ValueError, match="no finished cloud pass"):
        write_index(tmp_path / "cube.zarr")
    with pytest.raises(FileNotFoundError, match="no cube here"):
        write_index(tmp_path / "none.zarr")
    assert not (tmp_path / "none.zarr").exists()


def test_the_store_owns_the_file_names(tmp_path: Path) -> None:
    store = CubeStore(tmp_path / "c.zarr", mode="r+")
    with pytest.raises(ValueError, match=r"invalid cube file 'other.parquet'"):
        store.write_file("other.parquet", b"x")
    assert store.read_file(INDEX_FILE) is None
    store.write_file(INDEX_FILE, b"abc")
    assert store.read_file(INDEX_FILE) == b"abc" and store.file_location(INDEX_FILE) == str(
        tmp_path / "c.zarr" / INDEX_FILE
    )
