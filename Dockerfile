# One image for every mmsearch service (api, ui, workers); the command picks the role.
# The default torch wheel on Linux x86-64 carries CUDA, so the same image serves the GPU worker.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 MMSEARCH_DATA_DIR=/data
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg curl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY search ./search
COPY ingest ./ingest
COPY ui ./ui
COPY mmsearch ./mmsearch
RUN pip install ".[monitoring]"
VOLUME /data
EXPOSE 8000 8501
CMD ["mmsearch", "serve", "--host", "0.0.0.0"]
