"""Running at scale: units of work, local worker processes or a Dask cluster, progress
across workers, and partitioned outputs (docs/performance.md, docs/annotate.md "At scale").

- :mod:`.units`: what one worker processes (a video, an image, the stills of a folder, ...)
- :mod:`.pool`: where tasks run (inline, local processes, Dask) and worker events
- :mod:`.progress`: frames done of the total, frames/s and time left across workers
- :mod:`.parts`: one file or a folder of parts; resume; fsspec URLs
- :mod:`.annotate_run`: ``fuzzyemo annotate`` put together from the above
"""
