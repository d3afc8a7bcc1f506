"""The operator console: a live page of the service at the API's ``/``.

Where its figures come from (one source each, named on the page):

- versions, pointers, aliases, pins, the experiment, decisions: the registry in Redis
  (:class:`~streamserve.lifecycle.Registry`, the management routes' reads);
- the history of operator actions (pin, unpin, rollback, promote, ...): the audit log, a
  Redis stream every API change and every ``models`` command appends to (:mod:`.records`);
- drift alerts: a capped Redis stream per model the alert sink appends to beside the
  ``drift-alerts`` topic, so the API needs no Kafka consumer (:mod:`.records`);
- live figures (events scored per second, latency percentiles, consumer lag, dead
  letters, prequential metrics, learning paused): each process of the roles publishes a
  status summary of its own metrics to Redis every few seconds (:mod:`.status`), and the
  console sums them over the processes that published recently (:mod:`.summary`): in a
  multi-process deployment the API holds none of the scorer's metrics.
"""
