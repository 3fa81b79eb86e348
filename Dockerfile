# One image for every Jobbers process: docker-compose.yml picks the process with `command:`
# (jobbers_manager, jobbers_worker, jobbers_scheduler, jobbers_cleaner, jobbers_migrate).
#
#   docker build -t jobbers .
#   docker run --rm -e REDIS_URL=redis://redis:6379 jobbers jobbers_worker jobbers.examples.tasks
#
# Your own tasks: build FROM this image and COPY your task module into /app (or mount it).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The package ships its example tasks (jobbers.examples.tasks).
COPY pyproject.toml README.md ./
COPY jobbers ./jobbers
RUN pip install .

# Run unprivileged; /data holds the SQLite config database when SQL_PATH points there.
RUN useradd --create-home --uid 10001 jobbers && mkdir -p /data && chown jobbers /data
USER jobbers

EXPOSE 8000
CMD ["jobbers_worker", "jobbers.examples.tasks"]
