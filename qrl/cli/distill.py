"""`qrl distill`: the flags of a distillation (teacher, student, rounds, fine-tuning) and its one-line summary."""

from __future__ import annotations

from qrl.cli.options import add_deprecated_alias, add_progress, add_set, log


def add_distill(sub) -> None:
    p = sub.add_parser("distill", help="teach a VQC agent a classical SB3 policy (behaviour cloning, DAgger); "
                                       "writes runs/<run>/")
    p.add_argument("--teacher", required=True,
                   help="the teacher: an SB3 model zip (PPO, A2C, DQN, SAC, TD3) or a run folder holding model.zip")
    p.add_argument("--student", required=True, help="a VQC agent preset, e.g. ppo-vqc (see `qrl list`)")
    p.add_argument("--env", required=True, help="environment id the teacher was trained on, e.g. CartPole-v1")
    p.add_argument("--teacher-algo", default=None, choices=("ppo", "a2c", "dqn", "sac", "td3"),
                   help="the teacher's algorithm (default: read from the zip)")
    p.add_argument("--teacher-vecnormalize", default=None, metavar="PATH",
                   help="the teacher's VecNormalize statistics (default: vecnormalize.pkl next to the zip, or in "
                        "<zip name>/ as rl-zoo3 saves it; 'none': raw observations)")
    p.add_argument("--samples", type=int, default=10_000, help="labelled env steps per round (default 10000)")
    p.add_argument("--random-actions", type=float, default=0.2, metavar="P",
                   help="probability of a random action at each rollout step, to label states off the teacher's "
                        "path (default 0.2)")
    add_deprecated_alias(p, "--noise", "--random-actions", type=float)
    p.add_argument("--dagger", type=int, default=0,
                   help="DAgger rounds after the first: the student drives, the teacher labels (default 0)")
    p.add_argument("--labels", choices=("hard", "soft"), default="hard",
                   help="discrete actions: the teacher's greedy action, or its action probabilities (PPO/A2C "
                        "teachers; default hard)")
    p.add_argument("--epochs", type=int, default=20, help="training epochs per round (default 20)")
    p.add_argument("--batch-size", type=int, default=256, help="minibatch size (default 256)")
    p.add_argument("--lr", type=float, default=0.02, help="Adam learning rate (default 0.02)")
    p.add_argument("--box-loss", choices=("mse", "nll"), default="mse",
                   help="Box actions: squared error of the mean, or Gaussian log-likelihood (default mse)")
    p.add_argument("--finetune-steps", type=int, default=0,
                   help="then train this many env steps with the student's algorithm and preset (default 0)")
    p.add_argument("--critic-warmup", type=int, default=10_000,
                   help="with --finetune-steps, PPO/A2C students: env steps training the critic alone first "
                        "(default 10000)")
    p.add_argument("--eval-episodes", type=int, default=None,
                   help="episodes per evaluation (default: the environment's, 10 for CartPole-v1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default=None, help="the student's circuit backend: auto, torch or a PennyLane device")
    p.add_argument("--out", default="runs", help="folder for run folders (default runs/)")
    add_set(p, "override a student hyperparameter, e.g. --set policy_kwargs.n_layers=3 (repeatable)")
    add_progress(p, "progress bar while fine-tuning (default: when the terminal is interactive)")
    p.set_defaults(run=run_distill)


def run_distill(args) -> int:
    from qrl.config import parse_set, resolve
    from qrl.distill import DistillSettings, check_student, distill, load_teacher
    from qrl.runs import read_results

    settings = DistillSettings(samples=args.samples, dagger=args.dagger, epochs=args.epochs,
                               batch_size=args.batch_size, lr=args.lr, labels=args.labels,
                               random_actions=args.random_actions, box_loss=args.box_loss,
                               finetune_steps=args.finetune_steps, critic_warmup=args.critic_warmup,
                               eval_episodes=args.eval_episodes)
    settings.validate()
    config = resolve(args.student, args.env, seed=args.seed, device=args.device, overrides=parse_set(args.overrides))
    check_student(config)
    teacher = load_teacher(args.teacher, config, algo=args.teacher_algo, vecnormalize=args.teacher_vecnormalize)
    run_dir = distill(config, teacher, settings, out=args.out, progress=args.progress, announce=log)
    print(run_dir)
    print(_summary(read_results(run_dir)))
    return 0


def _summary(r: dict) -> str:
    steps = [f"{r['samples']} labelled states"]
    if r["critic_warmup_timesteps"]:
        steps.append(f"{r['critic_warmup_timesteps']} critic warm-up steps")
    steps.append(f"{r['finetune_timesteps']} fine-tuning steps")
    return (f"teacher {r['teacher_eval_mean']:.1f} +- {r['teacher_eval_std']:.1f}, student "
            f"{r['student_eval_mean']:.1f} +- {r['student_eval_std']:.1f} ({r['agent']}, "
            f"{r['parameters']['total']} parameters); {', '.join(steps)}, {r['wall_clock_s']:.0f} s")
