"""The images stage's logic, a module per idea (the Spark shell is jobs/images.py).

guard.py          consent (robots meta, X-Robots-Tag, robots.txt) and the private-network guard
download.py       img2dataset's downloader behind the guard, its errors as counted reasons
checks.py         one image decoded under a pixel budget, filtered, hashed, checked against evaluation images
safety.py         the NSFW classifier: an ONNX model and its input transform, scored once per sha256
onnx_speedups.py  rewrites that make an exported classifier faster on onnxruntime's CPU kernels
join.py           URLs through download and inspection into `_images` rows; those rows joined into documents
"""
