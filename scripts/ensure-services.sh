#!/usr/bin/env bash
# Makes sure Redis (127.0.0.1:6379) and RabbitMQ (127.0.0.1:5672) answer, starting the
# machine's own services when they have stopped. Does nothing when they already run.
set -euo pipefail

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
rabbit_listens() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
# A listening port is not enough: a broker can accept TCP and never answer. Send the AMQP 0-9-1
# protocol header and wait for the first byte of Connection.Start (frame type 1).
rabbit_up() {
  timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5672 && printf "AMQP\x00\x00\x09\x01" >&3 &&
    [ "$(head -c 1 <&3 | od -An -tu1 | tr -d " ")" = 1 ]' 2>/dev/null
}

if ! redis_up; then
  echo "services: starting Redis" >&2
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
if ! rabbit_listens; then
  echo "services: starting RabbitMQ" >&2
  rabbitmq-server -detached
fi
deadline=$((SECONDS + 120))
while ((SECONDS < deadline)); do
  if redis_up && rabbit_up && rabbitmq-diagnostics -q check_running >/dev/null 2>&1; then
    exit 0
  fi
  sleep 1
done
redis_up || echo "services: Redis (127.0.0.1:6379) does not answer PING" >&2
rabbit_up || echo "services: RabbitMQ (127.0.0.1:5672) does not answer an AMQP handshake;" \
  "'rabbitmqctl list_queues name' shows whether leftover queues are choking it" >&2
echo "services: Redis or RabbitMQ did not come up within 120 s" >&2
exit 1
