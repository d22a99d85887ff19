"""Reading and validating real raster stacks; writing georeferenced GeoTIFFs."""
import json
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from osgeo import gdal

from stacksr.core.io.outputs import check_output_path, write_geotiff
from stacksr.core.io.stack_io import RasterGrid, StackError, check_same_grid
from stacksr.core.io.whole_reads import read_stack
from stacksr.core.io.stack_sources import parse_int_list, sources_from_inputs

gdal.UseExceptions()


def _translate(src, dst, **kw):
    ds = gdal.Translate(str(dst), src, **kw)
    ds = None  # close before use
    return str(dst)


def _multiband(paths, dst):
    vrt = gdal.BuildVRT(str(dst) + ".vrt", paths, separate=True)
    vrt = None
    return _translate(str(dst) + ".vrt", dst)


def test_reads_real_stack_with_fmask(sample_images, sample_masks):
    stack = read_stack(sources_from_inputs(sample_images, masks=sample_masks))
    assert stack.data.shape == (8, 61, 61) and stack.data.dtype == np.float32
    assert stack.nodata == -9999 and stack.source_dtype == "int16"
    # the SLC-off Landsat 7 date has stripes of nodata, the Landsat 5 dates are clear
    slc_off = stack.names.index("LE70350322009232EDC00_b4.tif")
    assert 0.6 < stack.clear_fraction()[slc_off] < 0.95
    assert stack.clear_fraction().max() == 1.0
    assert stack.grid.geotransform[1] == 30.0


def test_fmask_values_mark_pixels_invalid(sample_images, sample_masks, tmp_path):
    mask = gdal.Open(sample_masks[0])
    arr = mask.ReadAsArray()
    arr[:10, :10] = 4  # cloud
    drv = gdal.GetDriverByName("GTiff")
    out = drv.CreateCopy(str(tmp_path / "m.tif"), mask)
    out.GetRasterBand(1).WriteArray(arr)
    out = None
    mask = None
    stack = read_stack(sources_from_inputs(sample_images[:2], masks=[str(tmp_path / "m.tif"), sample_masks[1]]))
    assert not stack.valid[0, :10, :10].any()
    none_masked = read_stack(sources_from_inputs(sample_images[:2], masks=[str(tmp_path / "m.tif"), sample_masks[1]]), invalid_mask_values=[])
    assert none_masked.valid[0, :10, :10].any()


def test_multiband_raster_with_band_selection(sample_images, tmp_path):
    mb = _multiband(sample_images[:5], tmp_path / "mb.tif")
    stack = read_stack(sources_from_inputs(multiband=mb, bands=[1, 3, 5]))
    assert stack.count == 3 and stack.names == ["mb.tif", "mb.tif:b3", "mb.tif:b5"]
    single = read_stack(sources_from_inputs(sample_images[2:3] + sample_images[4:5]))
    assert np.array_equal(stack.data[1:], single.data)
    assert read_stack(sources_from_inputs(multiband=mb)).count == 5


def test_fewer_than_two_images_is_refused(sample_images):
    with pytest.raises(StackError, match="at least 2 images"):
        read_stack(sources_from_inputs(sample_images[:1]))


def test_different_crs_is_refused_naming_the_layer(sample_images, tmp_path):
    other = _translate(sample_images[1], tmp_path / "other_crs.tif", outputSRS="EPSG:32612")
    with pytest.raises(StackError, match="'other_crs.tif' has a different CRS"):
        read_stack(sources_from_inputs([sample_images[0], other]))


def test_different_size_pixel_size_and_origin_are_refused(sample_images, tmp_path):
    small = _translate(sample_images[1], tmp_path / "small.tif", srcWin=[0, 0, 50, 61])
    with pytest.raises(StackError, match="'small.tif' is 50x61 pixels"):
        read_stack(sources_from_inputs([sample_images[0], small]))
    ds = gdal.Open(sample_images[1])
    gt = list(ds.GetGeoTransform())
    ds = None
    moved = _translate(sample_images[1], tmp_path / "moved.tif",
                       outputBounds=[gt[0] + 15, gt[3], gt[0] + 15 + 61 * 30, gt[3] - 61 * 30])
    with pytest.raises(StackError, match="'moved.tif' has origin"):
        read_stack(sources_from_inputs([sample_images[0], moved]))
    finer = _translate(sample_images[1], tmp_path / "finer.tif",
                       outputBounds=[gt[0], gt[3], gt[0] + 61 * 25, gt[3] - 61 * 25])
    with pytest.raises(StackError, match="'finer.tif' has pixel size 25"):
        read_stack(sources_from_inputs([sample_images[0], finer]))


def test_missing_and_corrupted_files_are_refused(sample_images, tmp_path):
    with pytest.raises(StackError, match="does not exist"):
        read_stack(sources_from_inputs([sample_images[0], str(tmp_path / "nope.tif")]))
    data = open(sample_images[1], "rb").read()
    broken = tmp_path / "truncated.tif"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(StackError, match="truncated.tif"):
        read_stack(sources_from_inputs([sample_images[0], str(broken)]))


def test_complex_pixels_and_missing_bands_are_refused(sample_images, tmp_path):
    cplx = _translate(sample_images[1], tmp_path / "complex.tif", outputType=gdal.GDT_CFloat32)
    with pytest.raises(StackError, match="complex pixels"):
        read_stack(sources_from_inputs([sample_images[0], cplx]))
    with pytest.raises(StackError, match="band 4 does not exist"):
        read_stack(sources_from_inputs(multiband=sample_images[0], bands=[1, 4]))


def test_all_nodata_stack_is_refused(sample_images, tmp_path):
    paths = []
    for i, src in enumerate(sample_images[:2]):
        p = _translate(src, tmp_path / f"nd{i}.tif", scaleParams=[[-32768, 32767, -9999, -9999]])
        paths.append(p)
    with pytest.raises(StackError, match="every pixel"):
        read_stack(sources_from_inputs(paths))


def test_write_geotiff_scales_pixel_size_keeps_origin_crs_nodata_and_tags(sample_images, tmp_path):
    stack = read_stack(sources_from_inputs(sample_images[:2]))
    grid = stack.grid.scaled(3)
    arr = np.arange(grid.width * grid.height, dtype=np.float32).reshape(grid.height, grid.width)
    out = write_geotiff(str(tmp_path / "sr.tif"), arr, grid, -9999.0, {"STACKSR_SCALE": "3", "STACKSR_INPUTS": stack.names})
    ds = gdal.Open(out)
    src_gt = stack.grid.geotransform
    assert ds.RasterXSize == 183 and ds.RasterYSize == 183
    assert ds.GetGeoTransform() == pytest.approx((src_gt[0], 10.0, 0.0, src_gt[3], 0.0, -10.0))
    band = ds.GetRasterBand(1)
    assert band.GetNoDataValue() == -9999.0
    assert band.GetBlockSize() == [256, 256]
    assert ds.GetMetadata("IMAGE_STRUCTURE")["COMPRESSION"] == "DEFLATE"
    assert json.loads(ds.GetMetadataItem("STACKSR_INPUTS")) == stack.names
    assert np.array_equal(band.ReadAsArray(), arr)
    assert "32613" in ds.GetProjection()
    del band
    ds = None
    assert sorted(os.listdir(tmp_path)) == ["sr.tif"]  # no temporary file left behind


def test_failed_write_leaves_no_file(tmp_path):
    grid = RasterGrid(10, 10, (0, 1, 0, 0, 0, -1), "")
    with pytest.raises(ValueError):
        write_geotiff(str(tmp_path / "bad.tif"), np.zeros((5, 5)), grid)
    assert os.listdir(tmp_path) == []


def test_output_may_not_be_an_input(sample_images, tmp_path):
    with pytest.raises(StackError, match="is one of the inputs"):
        check_output_path(sample_images[0], sample_images)
    with pytest.raises(StackError, match="does not exist"):
        check_output_path(str(tmp_path / "no" / "x.tif"), sample_images)


def test_band_lists_parse_ranges():
    assert parse_int_list("1,3, 5-7") == [1, 3, 5, 6, 7]
    assert parse_int_list("") == []
    with pytest.raises(StackError, match="cannot read 'x'"):
        parse_int_list("1,x")


# ---- property (hypothesis): grid validation accepts exactly the identical grids ------------------
_UTM33 = 'PROJCS["WGS 84 / UTM zone 33N",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",15],PARAMETER["scale_factor",0.9996],PARAMETER["false_easting",500000],PARAMETER["false_northing",0],UNIT["metre",1],AUTHORITY["EPSG","32633"]]'  # noqa: E501


@settings(max_examples=60, deadline=None)
@given(w=st.integers(1, 5000), h=st.integers(1, 5000), px=st.floats(0.5, 1000), x0=st.floats(-1e6, 1e6),
       y0=st.floats(-1e7, 1e7), change=st.sampled_from(["none", "width", "height", "pixel", "origin_x", "origin_y", "crs"]),
       amount=st.floats(0.01, 10))
def test_grid_validation_refuses_any_single_difference_and_nothing_else(w, h, px, x0, y0, change, amount):
    ref = RasterGrid(w, h, (x0, px, 0.0, y0, 0.0, -px), _UTM33)
    gt = list(ref.geotransform)
    width, height, crs = w, h, _UTM33
    if change == "width":
        width += 1
    elif change == "height":
        height += 1
    elif change == "pixel":
        gt[1] += px * amount
    elif change in ("origin_x", "origin_y"):
        gt[0 if change == "origin_x" else 3] += px * amount  # at least 1 % of a pixel
    elif change == "crs":
        crs = _UTM33.replace("zone 33N", "zone 34N").replace('"central_meridian",15', '"central_meridian",21').replace("32633", "32634")
    other = RasterGrid(width, height, tuple(gt), crs)
    if change == "none":
        check_same_grid(other, ref, "b.tif", "a.tif")
    else:
        with pytest.raises(StackError, match="'b.tif'"):
            check_same_grid(other, ref, "b.tif", "a.tif")


def test_reading_a_stack_allocates_little_beyond_the_stack_itself():
    """The stack is filled in place (no float64 copy per frame, no stacking copy): issue 16's memory bound
    starts here (the previous reader peaked at 2.2 x the stack)."""
    import tracemalloc

    from conftest import L8_CROP
    from stacksr.core.io.stack_io import ImageSource

    tracemalloc.start()
    stack = read_stack([ImageSource(L8_CROP) for _ in range(9)])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1.3 * (stack.data.nbytes + stack.valid.nbytes)


def test_a_multiband_mask_pairs_with_a_band_subset_by_band_number(sample_images, sample_masks, tmp_path):
    """Image bands 2 and 3 take the mask's bands 2 and 3 (not 1 and 2: a clear date was dropped as cloud)."""
    mb = _multiband(sample_images, tmp_path / "mb.tif")
    mm = _multiband(sample_masks, tmp_path / "mm.tif")
    subset = read_stack(sources_from_inputs(multiband=mb, bands=[1, 2], masks=[mm]))
    single = read_stack(sources_from_inputs(sample_images[:2], masks=sample_masks[:2]))
    assert np.array_equal(subset.valid, single.valid) and not subset.valid[0].all()  # band 1 is the SLC-off date
    later = read_stack(sources_from_inputs(multiband=mb, bands=[2, 3], masks=[mm]))
    assert np.array_equal(later.valid, read_stack(sources_from_inputs(sample_images[1:3], masks=sample_masks[1:3])).valid)
    short = _multiband(sample_masks[:2], tmp_path / "short.tif")
    with pytest.raises(StackError, match="pairs with the image by band number"):
        sources_from_inputs(multiband=mb, bands=[2, 3], masks=[short])
    with pytest.raises(StackError, match="has 8 bands for 3 images"):
        sources_from_inputs(sample_images[:3], masks=[mm])


def test_a_date_given_twice_and_a_band_that_does_not_exist_are_refused_by_name(sample_images, tmp_path):
    import os

    with pytest.raises(StackError, match="is given twice"):
        sources_from_inputs([sample_images[0], sample_images[1], sample_images[0]])
    link = str(tmp_path / "same.tif")
    os.symlink(sample_images[1], link)  # the same file under another name
    with pytest.raises(StackError, match="'same.tif' is given twice"):
        sources_from_inputs([sample_images[1], link])
    mb = _multiband(sample_images[:5], tmp_path / "mb.tif")
    with pytest.raises(StackError, match="'mb.tif' band 2 is given twice"):
        sources_from_inputs(multiband=mb, bands=[1, 2, 2])
    with pytest.raises(StackError, match="band 9 does not exist: 'mb.tif' has bands 1 to 5"):
        sources_from_inputs(multiband=mb, bands=[1, 9])
