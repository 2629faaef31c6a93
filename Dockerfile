# kpi-stream worker image; the same image runs `kpi-stream simulate`.
# Build: docker build -t kpi-stream .   Run: docker run kpi-stream worker
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/kpi-stream
WORKDIR /src
COPY pyproject.toml README.md ./
COPY stream ./stream
RUN /opt/kpi-stream/bin/pip install --no-cache-dir .

FROM python:3.11.11-slim-bookworm
RUN groupadd --system --gid 10001 kpi \
    && useradd --system --uid 10001 --gid kpi --no-create-home \
       --home-dir /var/lib/kpi-stream --shell /usr/sbin/nologin kpi \
    && install -d -o kpi -g kpi -m 0750 /var/lib/kpi-stream
COPY --from=build /opt/kpi-stream /opt/kpi-stream
ENV PATH=/opt/kpi-stream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    KPI_DATA_DIR=/var/lib/kpi-stream \
    KPI_WEB_HOST=0.0.0.0 \
    KPI_WEB_PORT=6066
USER 10001:10001
WORKDIR /var/lib/kpi-stream
VOLUME ["/var/lib/kpi-stream"]
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:' + os.environ['KPI_WEB_PORT'] + '/healthz', timeout=2)"]
ENTRYPOINT ["kpi-stream"]
CMD ["worker"]
