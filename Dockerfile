FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schema schema
COPY resolvers resolvers
COPY jobs jobs
COPY db db
COPY server server
COPY frontend-demo frontend-demo
RUN pip install --no-cache-dir -e .
EXPOSE 8000
CMD ["rushcart", "serve", "--host", "0.0.0.0"]
