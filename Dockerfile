FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
RUN useradd --create-home --uid 10001 sla
COPY pyproject.toml README.md ./
COPY worker ./worker
RUN pip install --no-cache-dir .
COPY config ./config
USER sla
ENV SLA_CONFIG=/app/config/sla.yaml
CMD ["sla-worker", "--help"]
