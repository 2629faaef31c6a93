# kpi-stream images. The default target is the worker: the `stream` package only (it runs
# `kpi-stream worker` and `report`). The `tools` target adds the development tools
# (`kpi_devtools`: `kpi-stream simulate`, as docker-compose.yml's simulator runs it).
# Build: docker build -t kpi-stream .            Run: docker run kpi-stream worker
#        docker build --target tools -t kpi-stream-tools .
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/kpi-stream
WORKDIR /src
COPY pyproject.toml README.md ./
COPY stream ./stream
RUN /opt/kpi-stream/bin/pip install --no-cache-dir .

FROM build AS build-tools
COPY kpi_devtools ./kpi_devtools
RUN /opt/kpi-stream/bin/pip install --no-cache-dir .

FROM python:3.11.11-slim-bookworm AS base
RUN groupadd --system --gid 10001 kpi \
    && useradd --system --uid 10001 --gid kpi --no-create-home \
       --home-dir /var/lib/kpi-stream --shell /usr/sbin/nologin kpi \
    && install -d -o kpi -g kpi -m 0750 /var/lib/kpi-stream
ENV PATH=/opt/kpi-stream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    KPI_DATA_DIR=/var/lib/kpi-stream \
    KPI_WEB_HOST=0.0.0.0 \
    KPI_WEB_PORT=6066
USER 10001:10001
WORKDIR /var/lib/kpi-stream
ENTRYPOINT ["kpi-stream"]

FROM base AS tools
COPY --from=build-tools /opt/kpi-stream /opt/kpi-stream
CMD ["simulate"]

FROM base AS worker
COPY --from=build /opt/kpi-stream /opt/kpi-stream
VOLUME ["/var/lib/kpi-stream"]
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:' + os.environ['KPI_WEB_PORT'] + '/healthz', timeout=2)"]
CMD ["worker"]
