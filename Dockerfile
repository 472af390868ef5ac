# The image of ray-cluster.yaml and k8s/rayjob-train.yaml: Ray's GPU image with tensorplane
# installed (extras ray, s3, index, media, torch), pinned by constraints.txt.
#
#   docker build -t ghcr.io/your-org/tensorplane:0.1.0-ray2.60.0 .
#   docker push ghcr.io/your-org/tensorplane:0.1.0-ray2.60.0
#
# RAY_IMAGE's Ray must be the `ray` of constraints.txt and the rayVersion of the YAML (a test
# checks all three). torch comes from PyPI (CUDA 13 wheels: NVIDIA driver >= 580); for an older
# driver pass e.g. --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128.
ARG RAY_IMAGE=rayproject/ray:2.60.0-py311-gpu
FROM ${RAY_IMAGE}

ARG TORCH_INDEX_URL=
WORKDIR /home/ray/tensorplane
COPY --chown=ray:users . .
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" \
            "$(grep '^torch==' constraints.txt)"; \
    fi \
 && pip install --no-cache-dir -c constraints.txt ".[ray,s3,index,media,torch]" \
 && python -c "import plane, actors, jobs.train, ray; print('tensorplane', plane.__version__, 'ray', ray.__version__)"
# `python -m jobs.train` works from any directory; `ray job submit --working-dir .` puts the
# submitted checkout first on sys.path, so local changes run without rebuilding the image.
WORKDIR /home/ray
