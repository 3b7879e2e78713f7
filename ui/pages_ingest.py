"""The Ingest page: start indexing a folder, URL, crawl or manifest, and watch it run.

The job runs in the API process (embedded mode) or on Celery workers; this page only starts
it and polls ``GET /jobs/{id}``: a fragment refreshes the counters every second while the
job is running, without re-running the rest of the page.

Watched folders (``/sources``) are listed below the jobs: the API's process rescans each one
after its files change, so new photos appear without starting a job; each can be removed here.
"""

from __future__ import annotations

import streamlit as st

from ui import components
from ui.client import ApiClient, ApiError, IngestJobRequest, Job, Source

SOURCES = {
    "folder": ("Folder or file", "/data/photos", "A folder on the API's machine; every image and video beneath it is indexed."),
    "url": ("Image or video URL", "https://example.com/photo.jpg", "One file on the web."),
    "crawl": ("Crawl a website", "https://example.com/gallery/", "Follows links from this page and indexes the images it finds."),
    "manifest": (
        "Product manifest",
        "/data/products.csv",
        "A CSV or JSONL catalogue with an image column; becomes product items.",
    ),
    "url_list": ("List of URLs", "/data/urls.txt", "A text file with one image URL per line."),
}
JOB_KEY = "ingest.job"
DONE_KEY = "ingest.job_done"  # set once the watched job finished: stop polling
POLL_SECONDS = 1.0
WATCH_STATES = {"starting": "gray", "watching": "green", "scanning": "blue", "missing": "orange", "empty": "orange"}


def render() -> None:
    api = components.client()
    st.title("Ingest", anchor=False)
    st.caption("Index new photos, videos and product catalogues. Unchanged files are skipped, so re-running is cheap.")
    _start_form(api)
    job_id = st.session_state.get(JOB_KEY)
    if job_id and st.session_state.get(DONE_KEY) == job_id:
        job = components.attempt(lambda: api.job(job_id), f"Job {job_id[:8]}")
        if job is not None:
            _job_panel(job)
    elif job_id:
        _watch(job_id)
    _recent_jobs(api)
    _watched_folders(api)


def _start_form(api: ApiClient) -> None:
    with st.form("ingest.form", border=True):
        source = st.segmented_control(
            "What to index",
            list(SOURCES),
            default="folder",
            key="ingest.source",
            required=True,
            format_func=lambda s: SOURCES[s][0],
        )
        _label, placeholder, help_text = SOURCES[source or "folder"]
        target = st.text_input("Path or URL", key="ingest.target", placeholder=placeholder, help=help_text)
        with st.expander("Options"):
            include = st.text_input("Only files matching", key="ingest.include", placeholder="*.jpg, *.mp4")
            exclude = st.text_input("Skip files matching", key="ingest.exclude", placeholder="*/thumbs/*")
            api_key = st.text_input(
                "API key", key="ingest.api_key", type="password", help="Needed only when the API is configured with one."
            )
        submitted = st.form_submit_button("Start indexing", type="primary", icon=":material/play_arrow:")
    if not submitted:
        return
    if not (target or "").strip():
        st.warning("Enter a path or URL to index.", icon=":material/edit:")
        return
    request = _request(source or "folder", target.strip(), include, exclude)
    try:
        job_id = api.start_ingest(request, api_key=api_key or None)
    except ApiError as error:
        components.show_error(error, "Could not start the job")
        return
    st.session_state[JOB_KEY] = job_id
    st.session_state.pop(DONE_KEY, None)
    st.toast(f"Job {job_id[:8]} started", icon=":material/rocket_launch:")


def _request(source: str, target: str, include: str, exclude: str) -> IngestJobRequest:
    globs = lambda text: tuple(p.strip() for p in (text or "").split(",") if p.strip())  # noqa: E731
    fields = {"folder": "paths", "url": "paths", "crawl": "crawl", "manifest": "manifests", "url_list": "url_lists"}
    return IngestJobRequest(**{fields[source]: (target,)}, include=globs(include), exclude=globs(exclude))


@st.fragment(run_every=POLL_SECONDS)
def _watch(job_id: str) -> None:
    """Live progress of one job; stops polling once it has finished."""
    api = components.client()
    try:
        job = api.job(job_id)
    except ApiError as error:
        components.show_error(error, f"Job {job_id[:8]}")
        return
    _job_panel(job)
    if job.finished:
        st.session_state[DONE_KEY] = job.id
        st.rerun(scope="app")


def _job_panel(job: Job) -> None:
    with st.container(border=True, key="ingest_job"):
        st.markdown(f"**Job {job.id[:8]}** &nbsp; {_status_badge(job.status)}")
        text = f"{job.processed} of {job.discovered} items" + (
            "" if job.finished else " (still discovering)" if job.status == "running" else ""
        )
        st.progress(job.fraction, text=text)
        with st.container(horizontal=True):
            for label, value in (
                ("Discovered", job.discovered),
                ("Indexed", job.indexed),
                ("Skipped", job.skipped),
                ("Failed", job.failed),
            ):
                st.metric(label, value, border=True)
        if job.error:
            st.error(job.error, icon=":material/error:")
        if job.failures:
            st.markdown(f"**{job.failed} failed** — each with its reason:")
            st.dataframe([{"item": f.uri, "reason": f.reason} for f in job.failures], hide_index=True, width="stretch")


def _status_badge(status: str) -> str:
    colour = {"queued": "gray", "running": "blue", "done": "green", "failed": "red", "cancelled": "orange"}.get(status, "gray")
    return f":{colour}-badge[{status}]"


def _recent_jobs(api: ApiClient) -> None:
    st.subheader("Recent jobs", anchor=False)
    jobs = components.attempt(lambda: api.jobs(limit=20), "Jobs")
    if jobs is None:
        return
    if not jobs:
        st.caption("No ingest jobs yet.")
        return
    rows = [
        {
            "job": j.id[:8],
            "status": j.status,
            "created": j.created_at[:19].replace("T", " "),
            "discovered": j.discovered,
            "indexed": j.indexed,
            "skipped": j.skipped,
            "failed": j.failed,
        }
        for j in jobs
    ]
    st.dataframe(rows, hide_index=True, width="stretch")
    failing = [j for j in jobs if j.failed]
    if failing:
        chosen = st.selectbox("Show failures of", [j.id for j in failing], format_func=lambda i: i[:8], key="ingest.failures_of")
        job = components.attempt(lambda: api.job(chosen), "Job")
        if job is not None and job.failures:
            st.dataframe([{"item": f.uri, "reason": f.reason} for f in job.failures], hide_index=True, width="stretch")


def _watched_folders(api: ApiClient) -> None:
    st.subheader("Watched folders", anchor=False)
    found = components.attempt(api.sources, "Sources")
    if found is None:
        return
    sources, watching = found
    if not watching:
        st.caption("This server does not watch folders (run `mmsearch serve` in embedded mode, or `mmsearch watch PATH`).")
        return
    watched = [s for s in sources if s.watch is not None]
    if not watched:
        st.caption("No folder is watched yet: add one to index new and changed files as they appear.")
    for source in watched:
        _watched_row(api, source)
    with st.form("watch.form", border=True):
        path = st.text_input("Folder to watch", key="watch.path", placeholder="/data/photos")
        exclude = st.text_input("Skip files matching", key="watch.exclude", placeholder="*/cache/*, *.png")
        api_key = st.text_input("API key", key="watch.api_key", type="password", help="Needed only when the API has one.")
        added = st.form_submit_button("Watch folder", icon=":material/visibility:")
    if added:
        if not (path or "").strip():
            st.warning("Enter the folder to watch.", icon=":material/edit:")
            return
        globs = tuple(p.strip() for p in (exclude or "").split(",") if p.strip())
        try:
            folder = api.watch(path.strip(), exclude=globs, api_key=api_key or None)
        except ApiError as error:
            components.show_error(error, "Could not watch the folder")
            return
        st.toast(f"Watching {folder.path}", icon=":material/visibility:")
        st.rerun()


def _watched_row(api: ApiClient, source: Source) -> None:
    watch = source.watch
    assert watch is not None
    with st.container(border=True, horizontal=True, key=f"watched_{source.id}"):
        colour = WATCH_STATES.get(watch.state, "gray")
        excludes = f" · skips {', '.join(watch.exclude)}" if watch.exclude else ""
        st.markdown(f"**{watch.path}** &nbsp; :{colour}-badge[{watch.state}]  \n{watch.detail or '&nbsp;'}{excludes}")
        if st.button("Stop watching", key=f"unwatch.{source.id}", icon=":material/visibility_off:"):
            try:
                api.unwatch(source.id, api_key=st.session_state.get("watch.api_key") or None)
            except ApiError as error:
                components.show_error(error, "Could not stop watching")
                return
            st.rerun()


if __name__ == "__main__":
    render()
