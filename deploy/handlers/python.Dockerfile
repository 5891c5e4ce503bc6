# The Python example handler as an image, for Knative / Cloud Run (deploy/faas).
# Build from the repository root:
#   docker build -f deploy/handlers/python.Dockerfile -t REGISTRY/tasker-handler-python .
FROM python:3.11-slim
WORKDIR /app
COPY examples/handlers/python/handler.py examples/handlers/python/tasker_helpers.py ./
USER 65532:65532
# Knative and Cloud Run set PORT (8080); handler.py reads it.
ENV PORT=8080 PYTHONUNBUFFERED=1
EXPOSE 8080
CMD ["python3", "handler.py"]
