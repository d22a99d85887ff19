"""Reading stacks, writing rasters, reports and files safely: the layer every other one may use."""
