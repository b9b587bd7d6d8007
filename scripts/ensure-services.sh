#!/usr/bin/env bash
# Makes sure Redis (127.0.0.1:6379) and RabbitMQ (127.0.0.1:5672) answer, starting the
# machine's own services when they have stopped. Does nothing when they already run.
set -euo pipefail

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
rabbit_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

if ! redis_up; then
  echo "services: starting Redis" >&2
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
if ! rabbit_up; then
  echo "services: starting RabbitMQ" >&2
  rabbitmq-server -detached
fi
for _ in $(seq 1 120); do
  if redis_up && rabbit_up && rabbitmq-diagnostics -q check_running >/dev/null 2>&1; then
    exit 0
  fi
  sleep 1
done
echo "services: Redis or RabbitMQ did not come up within 120 s" >&2
exit 1
