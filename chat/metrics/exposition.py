"""The readings in the Prometheus text format: straight from this process, or summed over every worker process through
prometheus_client's multiprocess files (each worker writes its own totals there every metrics_flush_interval)."""
import glob
import logging
import math
import os
import re
import time

import gevent
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.utils import floatToGoString

from chat.metrics.readings import COUNTER, GAUGE, cumulative_buckets, read

log = logging.getLogger("chat.metrics")

_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db$")


class _Readings:
    """A prometheus_client collector of this process's readings (one process: nothing to sum)."""

    def __init__(self, sources):
        self._sources = sources

    def collect(self):
        for family in read(self._sources):
            if family.kind == COUNTER:
                metric = CounterMetricFamily(family.name, family.help, labels=family.labels)
                for values, number in family.samples:
                    metric.add_metric(values, number)
            elif family.kind == GAUGE:
                metric = GaugeMetricFamily(family.name, family.help, labels=family.labels)
                for values, number in family.samples:
                    metric.add_metric(values, number)
            else:
                metric = HistogramMetricFamily(family.name, family.help, labels=family.labels)
                for values, buckets in family.samples:
                    metric.add_metric(
                        values, [(floatToGoString(le), n) for le, n in cumulative_buckets(buckets)], buckets.sum
                    )
            yield metric


class SharedFiles:
    """This process's readings in prometheus_client's multiprocess files in `directory` (counter_PID.db,
    gauge_MODE_PID.db, histogram_PID.db), written as totals, not increments: a worker that ends leaves its counters
    (so sums never go down) and its gauges are dropped at the next scrape."""

    def __init__(self, directory, sources):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.directory = directory
        self._sources = sources
        self._pid = os.getpid()
        self._files = {}

    def _file(self, prefix):
        f = self._files.get(prefix)
        if f is None:
            f = self._files[prefix] = MmapedDict(os.path.join(self.directory, f"{prefix}_{self._pid}.db"))
        return f

    def write(self):
        now = time.time()
        for family in read(self._sources):
            name, labels, doc = family.name, family.labels, family.help
            if family.kind == COUNTER:
                f = self._file("counter")
                for values, number in family.samples:
                    f.write_value(mmap_key(name, name + "_total", labels, values, doc), float(number), 0.0)
            elif family.kind == GAUGE:
                f = self._file("gauge_" + family.combine)
                for values, number in family.samples:
                    f.write_value(mmap_key(name, name, labels, values, doc), float(number), now)
            else:
                f = self._file("histogram")
                for values, buckets in family.samples:
                    # Per bucket, not cumulative: the collector adds every process's buckets up, then accumulates.
                    for bound, count in zip(buckets.bounds + (math.inf,), buckets.counts):
                        key = mmap_key(name, name + "_bucket", labels + ("le",), values + (floatToGoString(bound),), doc)
                        f.write_value(key, float(count), 0.0)
                    f.write_value(mmap_key(name, name + "_sum", labels, values, doc), buckets.sum, 0.0)

    def forget_dead(self):
        """Drop the gauges of worker processes that ended (a crash leaves them; their counters stay)."""
        for path in glob.glob(os.path.join(self.directory, "gauge_live*_*.db")):
            match = _LIVE_GAUGE_FILE.search(path)
            if match is None:
                continue
            pid = int(match.group(1))
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                mark_process_dead(pid, self.directory)
            except PermissionError:
                pass  # alive, another user's

    def run(self, interval):
        """Write every `interval` seconds, for as long as the process runs (a greenlet)."""
        while True:
            gevent.sleep(interval)
            try:
                self.write()
            except Exception:
                log.exception("could not write this process's metrics to %s", self.directory)


class Exporter:
    """`render()`: the text of one scrape. With `directory` (several worker processes), every process's numbers summed."""

    def __init__(self, sources, directory=None, flush_interval=1.0):
        self.registry = CollectorRegistry(auto_describe=False)
        self.shared = None
        if directory:
            self.shared = SharedFiles(directory, sources)
            self.shared.write()
            MultiProcessCollector(self.registry, path=directory)
            gevent.spawn(self.shared.run, flush_interval)
        else:
            self.registry.register(_Readings(sources))

    def flush(self):
        """Write this process's numbers for the others to read (called last, at shutdown: nothing counted is lost)."""
        if self.shared is not None:
            self.shared.write()

    def render(self):
        if self.shared is not None:
            self.shared.write()  # this process's own numbers as of now; the others' as of their last write
            self.shared.forget_dead()
        return generate_latest(self.registry)
