"""Getting the data set into a cube: discovery and checks, archives, download, and the conversion of a GeoTIFF
tree or of the archives."""
