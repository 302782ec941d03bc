"""Building blocks shared by the FR metrics, one module per theme (as piq's `functional`).

`validation` (input checks), `batching` (reference sharing), `arithmetic` (MATLAB rounding, powers,
similarities), `colour` (rgb2gray, colour matrices, Lab), `filters` (kernels, MATLAB borders, box downsampling,
gradients), `resize` (MATLAB imresize), `spectral` (FFT grids, log-Gabor) and `pooling` (float64 means).
Images are NHWC tensors; small numpy builders make the constant kernels and matrices.
"""
