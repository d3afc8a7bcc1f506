FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streamserve ./streamserve
COPY topics ./topics
RUN pip install --no-cache-dir .
ENV STREAMSERVE_TOPICS_DIR=/app/topics
USER 65534:65534
EXPOSE 9100
ENTRYPOINT ["streamserve"]
