//! burn-train pieces the examples share: loss terms as numeric metrics, a resume fix for the
//! metric logs, and reading the logged curves back for plots.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use burn::train::checkpoint::{CheckpointingAction, CheckpointingStrategy};
use burn::train::logger::{FileMetricLogger, MetricLogger};
use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::store::EventStoreClient;
use burn::train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn::train::metric::{
    Metric, MetricAttributes, MetricDefinition, MetricId, MetricMetadata, MetricName, Numeric,
    NumericAttributes, NumericEntry, SerializedEntry,
};
use burn::train::renderer::tui::TuiMetricsRendererWrapper;
use burn::train::renderer::{
    EvaluationName, EvaluationProgress, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining, ProgressType, TrainingProgress,
};
use burn::train::{LearnerSummary, SupervisedTraining};

/// Per-batch numbers a model's output syncs to (its `ItemLazy::ItemSync`).
pub trait BatchStats: Clone + Send + Sync + 'static {
    /// Items in the batch: the weight of the batch in the epoch mean.
    fn batch_size(&self) -> usize;
}

/// One field of a [`BatchStats`] as a burn-train numeric metric (epoch mean weighted by batch
/// size), shown by the renderer and written by the metric logger.
#[derive(Clone)]
pub struct TermMetric<S> {
    name: MetricName,
    pick: fn(&S) -> f64,
    higher_is_better: bool,
    state: NumericMetricState,
}

impl<S> TermMetric<S> {
    /// A metric `name` whose value is `pick(stats)`; lower is better.
    pub fn new(name: &str, pick: fn(&S) -> f64) -> Self {
        Self {
            name: Arc::new(name.to_string()),
            pick,
            higher_is_better: false,
            state: NumericMetricState::new(),
        }
    }
}

impl<S: BatchStats> Metric for TermMetric<S> {
    type Input = S;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(&mut self, stats: &S, _: &MetricMetadata) -> SerializedEntry {
        let format = FormatOptions::new(self.name()).precision(4);
        self.state
            .update((self.pick)(stats), stats.batch_size(), format)
    }

    fn clear(&mut self) {
        self.state.reset()
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: None,
            higher_is_better: self.higher_is_better,
        }
        .into()
    }
}

impl<S: BatchStats> Numeric for TermMetric<S> {
    fn value(&self) -> NumericEntry {
        self.state.current_value()
    }

    fn running_value(&self) -> NumericEntry {
        self.state.running_value()
    }
}

/// Checkpoints every `every` epochs and after the last one, keeping the newest two: resuming
/// needs one, and writing the model and optimiser state each epoch can cost more than a
/// small model's epoch.
pub struct EveryNEpochs {
    every: usize,
    last: usize,
    saved: Vec<usize>,
}

impl EveryNEpochs {
    /// Every `every` epochs (at least 1) of a run of `epochs`.
    pub fn new(every: usize, epochs: usize) -> Self {
        Self {
            every: every.max(1),
            last: epochs,
            saved: Vec::new(),
        }
    }
}

impl CheckpointingStrategy for EveryNEpochs {
    fn checkpointing(&mut self, epoch: usize, _: &EventStoreClient) -> Vec<CheckpointingAction> {
        if !epoch.is_multiple_of(self.every) && epoch != self.last {
            return Vec::new();
        }
        self.saved.push(epoch);
        let mut actions = vec![CheckpointingAction::Save];
        if self.saved.len() > 2 {
            actions.push(CheckpointingAction::Delete(self.saved.remove(0)));
        }
        actions
    }
}

/// burn-train 0.21.0 numbers the first epoch after `.checkpoint(k)` as epoch 1 in its event
/// store, so its logs would overwrite `epoch-1/` and epoch `k + 1` would be missing. This
/// logger writes that epoch under its real number.
pub struct ResumedLogger {
    inner: FileMetricLogger,
    first_epoch: usize,
}

impl ResumedLogger {
    /// The file logger of `dir`, for a run resumed after epoch `resumed_after`.
    pub fn new(dir: &Path, resumed_after: usize) -> Self {
        Self {
            inner: FileMetricLogger::new(dir),
            first_epoch: resumed_after + 1,
        }
    }
}

impl MetricLogger for ResumedLogger {
    fn log(&mut self, update: MetricsUpdate, epoch: usize, split: &Split) {
        let epoch = if epoch == 1 { self.first_epoch } else { epoch };
        self.inner.log(update, epoch, split)
    }

    fn read_numeric(
        &mut self,
        name: &str,
        epoch: usize,
        split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        self.inner.read_numeric(name, epoch, split)
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        self.inner.log_metric_definition(definition)
    }

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        self.inner.log_epoch_summary(summary)
    }
}

/// The epoch means of metric `name` on `split` ("train" or "valid") logged under `dir` by
/// burn-train's file logger, as `(epoch, value)` for every epoch found.
pub fn logged_curve(dir: &Path, split: &str, name: &str) -> Vec<(f64, f64)> {
    let mut logger = FileMetricLogger::new(dir);
    let split = if split == "train" {
        Split::Train
    } else {
        Split::Valid
    };
    (1..)
        .map_while(|epoch| {
            let entries = logger.read_numeric(name, epoch, &split).ok()?;
            let (mut sum, mut n) = (0.0, 0usize);
            for entry in entries {
                match entry {
                    NumericEntry::Value(v) => (sum, n) = (sum + v, n + 1),
                    NumericEntry::Aggregated {
                        aggregated_value,
                        count,
                    } => (sum, n) = (sum + aggregated_value * count as f64, n + count),
                }
            }
            (n > 0).then(|| (epoch as f64, sum / n as f64))
        })
        .collect()
}

/// The run management every example shares: checkpoints (model, optimiser, scheduler) every
/// `checkpoint_every` epochs and after the last ([`EveryNEpochs`]), `epochs` epochs, the summary
/// table, resuming after epoch `resume` from the checkpoints in `out` (with [`ResumedLogger`]),
/// and the renderer ([`with_renderer`]).
pub fn managed<LC: burn::train::LearningComponentsTypes>(
    training: SupervisedTraining<LC>,
    out: &Path,
    epochs: usize,
    checkpoint_every: usize,
    resume: Option<usize>,
) -> SupervisedTraining<LC> {
    let mut training = training
        .with_file_checkpointer(burn::record::CompactRecorder::new())
        .with_checkpointing_strategy(EveryNEpochs::new(checkpoint_every, epochs))
        .num_epochs(epochs)
        .summary();
    if let Some(epoch) = resume {
        training = training
            .checkpoint(epoch)
            .with_metric_logger(ResumedLogger::new(out, epoch));
    }
    with_renderer(training, resume)
}

/// The renderer of a run: burn-train's terminal UI when stdout is a terminal, else one line per
/// split and epoch on stderr ([`EpochLines`]; burn's plain renderer prints a line per batch).
pub fn with_renderer<LC: burn::train::LearningComponentsTypes>(
    training: SupervisedTraining<LC>,
    resumed_after: Option<usize>,
) -> SupervisedTraining<LC> {
    if std::io::stdout().is_terminal() {
        let tui = TuiMetricsRendererWrapper::new(training.interrupter(), resumed_after);
        training.renderer(tui)
    } else {
        training.renderer(EpochLines::default())
    }
}

/// Prints `[valid] epoch 2/300 | KL 12.3456 | Loss 700.1234 ...` (epoch means weighted by batch
/// size) when a split's epoch ends, and burn's summary table at the end of training.
#[derive(Default)]
pub struct EpochLines {
    names: HashMap<MetricId, String>,
    sums: BTreeMap<(&'static str, String), (f64, usize)>,
    current: Option<(&'static str, usize, usize)>,
}

impl EpochLines {
    fn add(&mut self, split: &'static str, state: MetricState) {
        if let MetricState::Numeric(
            entry,
            NumericEntry::Aggregated {
                aggregated_value,
                count,
            },
        ) = state
        {
            let name = self
                .names
                .get(&entry.metric_id)
                .cloned()
                .unwrap_or_default();
            let sum = self.sums.entry((split, name)).or_insert((0.0, 0));
            sum.0 += aggregated_value * count as f64;
            sum.1 += count;
        }
    }

    fn flush(&mut self) {
        let Some((split, epoch, epochs)) = self.current.take() else {
            return;
        };
        let mut line = format!("[{split}] epoch {epoch}/{epochs}");
        self.sums.retain(|(s, name), (sum, n)| {
            if *s != split {
                return true;
            }
            line += &format!(" | {name} {:.4}", *sum / (*n).max(1) as f64);
            false
        });
        eprintln!("{line}");
    }

    fn render(&mut self, split: &'static str, progress: TrainingProgress) {
        let key = (
            split,
            progress.global_progress.items_processed,
            progress.global_progress.items_total,
        );
        if self.current != Some(key) {
            self.flush();
            self.current = Some(key);
        }
    }
}

impl MetricsRendererTraining for EpochLines {
    fn update_train(&mut self, state: MetricState) {
        self.add("train", state)
    }

    fn update_valid(&mut self, state: MetricState) {
        self.add("valid", state)
    }

    fn render_train(&mut self, item: TrainingProgress, _: Vec<ProgressType>) {
        self.render("train", item)
    }

    fn render_valid(&mut self, item: TrainingProgress, _: Vec<ProgressType>) {
        self.render("valid", item)
    }

    fn on_train_end(
        &mut self,
        summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        self.flush();
        if let Some(summary) = summary {
            eprintln!("{summary}");
        }
        Ok(())
    }
}

impl MetricsRendererEvaluation for EpochLines {
    fn update_test(&mut self, _: EvaluationName, _: MetricState) {}

    fn render_test(&mut self, _: EvaluationProgress, _: Vec<ProgressType>) {}
}

impl MetricsRenderer for EpochLines {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.names.insert(definition.metric_id, definition.name);
    }
}

/// Scales all of `grads` by `max_norm / (‖grads‖ + 1e-6)` when their joint L2 norm over
/// every float parameter of `module` exceeds `max_norm`: PyTorch's
/// `clip_grad_norm_(module.parameters(), max_norm)`, which bpnet-lite applies every step.
/// burn's `GradientClippingConfig::Norm` clips each parameter tensor on its own instead.
/// The norm stays on the device (no read-back).
pub fn clip_global_norm<
    B: burn::tensor::backend::AutodiffBackend,
    M: burn::module::AutodiffModule<B>,
>(
    module: &M,
    mut grads: burn::optim::GradientsParams,
    max_norm: f64,
) -> burn::optim::GradientsParams {
    use burn::module::{ModuleVisitor, Param};
    use burn::tensor::Tensor;
    type Inner<B> = <B as burn::tensor::backend::AutodiffBackend>::InnerBackend;

    struct SquaredNorm<'a, B: burn::tensor::backend::AutodiffBackend> {
        grads: &'a burn::optim::GradientsParams,
        sum: Option<Tensor<Inner<B>, 1>>,
    }
    impl<B: burn::tensor::backend::AutodiffBackend> ModuleVisitor<B> for SquaredNorm<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.get::<Inner<B>, D>(param.id) {
                let s = g.square().sum();
                self.sum = Some(match self.sum.take() {
                    Some(sum) => sum + s,
                    None => s,
                });
            }
        }
    }
    struct Scale<'a, B: burn::tensor::backend::AutodiffBackend> {
        grads: &'a mut burn::optim::GradientsParams,
        coefficient: Tensor<Inner<B>, 1>,
    }
    impl<B: burn::tensor::backend::AutodiffBackend> ModuleVisitor<B> for Scale<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.remove::<Inner<B>, D>(param.id) {
                let c = self.coefficient.clone().reshape([1; D]);
                self.grads.register(param.id, g * c);
            }
        }
    }

    let mut norm = SquaredNorm::<B> {
        grads: &grads,
        sum: None,
    };
    module.visit(&mut norm);
    let Some(sum) = norm.sum else {
        return grads;
    };
    let coefficient = (sum.sqrt().add_scalar(1e-6).recip() * max_norm).clamp_max(1.0);
    module.visit(&mut Scale::<B> {
        grads: &mut grads,
        coefficient,
    });
    grads
}
