"""``scalms hpc submit | status | collect``: a scalms command as a SLURM job array."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalms.cli._errors import user_errors

JobDirArgument = Annotated[Path, typer.Argument(help="The job folder `scalms hpc submit` wrote.")]
STATE_COLOURS = {"done": "green", "failed": "red", "running": "cyan", "pending": "yellow"}


@user_errors
def submit(
    ctx: typer.Context,
    job_dir: Annotated[
        Path, typer.Option("--dir", help="Job folder: script, job.json, logs, task outputs.")
    ],
    template: Annotated[
        str, typer.Option(help="cpu-dft (HPC/cpu_dft.sbatch), gpu (HPC/gpu_node.sbatch) or a path.")
    ] = "cpu-dft",
    array_tasks: Annotated[
        int, typer.Option(help="Array tasks sharing the work (rattle frames, structures).")
    ] = 1,
    partition: Annotated[str | None, typer.Option(help="SLURM partition.")] = None,
    time: Annotated[
        str | None, typer.Option(help="Wall time per task: MINUTES, HH:MM:SS or D-HH:MM:SS.")
    ] = None,
    nodes: Annotated[int | None, typer.Option(help="Nodes per task.")] = None,
    cpus_per_task: Annotated[int | None, typer.Option(help="Cores per task (OpenMP).")] = None,
    mem: Annotated[
        str | None, typer.Option(help="Memory per node, e.g. 16G (replaces --mem-per-cpu).")
    ] = None,
    gpus: Annotated[int | None, typer.Option(help="GPUs per task (0: none).")] = None,
    account: Annotated[str | None, typer.Option(help="Account charged.")] = None,
    qos: Annotated[str | None, typer.Option(help="Quality of service.")] = None,
    job_name: Annotated[str | None, typer.Option(help="Job name (default scalms-<kind>).")] = None,
    requeue: Annotated[
        bool, typer.Option(help="Let SLURM requeue a task (node failure, scontrol requeue).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option(help="Write the job folder and script, submit nothing.")
    ] = False,
) -> None:
    """Write a readable sbatch script for the scalms command after `--`, split into
    --array-tasks array tasks, and submit it with sbatch; prints the job id.

    Example: scalms hpc submit --dir jobs/rattle --array-tasks 4 -- hpc rattle Ga54Pt.xyz
    --calculator cp2k --count 200 --out Ga54Pt_ref.xyz. rattle shares its frames out
    (--shard), static and dynamics run their structures; any other command runs as one task.
    """
    import typer.main

    from scalms.cli import app
    from scalms.hpc.slurm.jobs import submit_job
    from scalms.hpc.slurm.script import SbatchOptions

    options = SbatchOptions(
        partition, time, nodes, cpus_per_task, mem, gpus, account, qos, job_name, requeue
    )
    submitted = submit_job(
        list(ctx.args),
        job_dir,
        typer.main.get_command(app),
        n_tasks=array_tasks,
        template=template,
        options=options,
        dry_run=dry_run,
    )
    jd, n = submitted.job_dir, len(submitted.plan.tasks)
    if submitted.job_id is None:
        typer.echo(f"wrote {jd.script} ({n} array task(s)); not submitted (--dry-run)")
        return
    typer.echo(submitted.job_id)
    typer.echo(
        f"submitted {jd.script} as job {submitted.job_id} ({n} array task(s)); follow it with "
        f"`scalms hpc status {jd.root}`",
        err=True,
    )


@user_errors
def status(job_dir: JobDirArgument) -> None:
    """Each array task's state: pending or running (the queue), done or failed (its exit code;
    a task gone from the queue without one was killed), with its log."""
    from scalms.cli._console import console as make_console
    from scalms.hpc.slurm.jobs import job_status

    print_statuses(make_console(), job_status(job_dir))


def print_statuses(console, statuses) -> None:
    from rich.table import Table

    table = Table(title="SLURM array tasks")
    for column in ("task", "state", "detail", "job", "log"):
        table.add_column(column)
    for s in statuses:
        colour = STATE_COLOURS.get(s.state, "white")
        table.add_row(
            str(s.task), f"[{colour}]{s.state}[/]", s.detail, s.job_id or "-", str(s.log or "-")
        )
    console.print(table)
    counts = {state: sum(s.state == state for s in statuses) for state in STATE_COLOURS}
    console.print(", ".join(f"{n} {state}" for state, n in counts.items() if n))


@user_errors
def collect(
    job_dir: JobDirArgument,
    resubmit_failed: Annotated[
        bool, typer.Option(help="Submit the failed tasks again, only those.")
    ] = False,
) -> None:
    """Merge the tasks' outputs into the command's own output once every task is done; list
    failed tasks with the end of their logs. Exits 1 while any task is not done."""
    from rich.markup import escape

    from scalms.cli._console import console as make_console
    from scalms.hpc.slurm.collect import collect_job

    console = make_console()
    result = collect_job(job_dir, resubmit_failed=resubmit_failed)
    print_statuses(console, result.statuses)
    for s in result.failed:
        console.print(f"[red]failed[/] task {s.task}: {s.detail} (log: {s.log})")
        for line in result.log_tails.get(s.task, []):
            console.print(f"    {escape(line)}")
    if result.resubmitted is not None:
        tasks = ",".join(map(str, result.resubmitted.tasks))
        console.print(f"resubmitted task(s) {tasks} as job {result.resubmitted.job_id}")
    if result.failed or result.unfinished:
        if result.failed and result.resubmitted is None:
            console.print("fix the cause, then `scalms hpc collect --resubmit-failed` reruns them")
        elif result.unfinished and not result.failed:
            console.print("not merged yet: some tasks have not finished")
        raise typer.Exit(1)
    console.print(
        f"[green]merged[/] {result.summary}" + (f": {result.output}" if result.output else "")
    )
