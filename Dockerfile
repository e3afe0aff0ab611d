# The pipeline as an image, for a VM (docker run ... schedule) or Cloud Run jobs (refresh, backfill).
# Build: docker build -t elexon-pipeline .   (see README "Deployment")
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOG_JSON=1

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY run.py README.md settings.example.toml ./
COPY core core
COPY ingest ingest
COPY warehouse warehouse
COPY reporting reporting
COPY ops ops
COPY alerts alerts
COPY sql sql
COPY sheets_templates sheets_templates

RUN useradd --system --uid 10001 --home-dir /app elexon \
    && mkdir -p /app/data /app/out \
    && chown elexon /app/data /app/out
USER elexon

# the DuckDB warehouse, Portal downloads and the local dashboard live here (mount a volume);
# with WAREHOUSE_URL=bigquery://... only out/ matters, and only without Google Sheets
VOLUME ["/app/data", "/app/out"]

# settings: mount a file and set SETTINGS_FILE, and pass secrets as environment variables
ENTRYPOINT ["python", "run.py"]
CMD ["schedule"]
