# Image for the example app in collector/docker-compose.yaml (build context: the repository root).
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY amas_otel ./amas_otel
COPY examples ./examples
RUN pip install --no-cache-dir ".[fastapi]"

EXPOSE 8000
# amas-otel-instrument configures OpenTelemetry before uvicorn imports the app.
CMD ["amas-otel-instrument", "uvicorn", "examples.app:app", "--host", "0.0.0.0", "--port", "8000"]
