using NearML.Training.Data;
using NearML.Training.Modules.Internal;
using NearML.Training.Tensors;

namespace NearML.Training.Modules;

/// <summary>The size of a <see cref="Gpt"/>.</summary>
/// <param name="Vocabulary">Number of token ids.</param>
/// <param name="Context">Longest sequence (rows of the position table).</param>
/// <param name="DModel">Embedding width.</param>
/// <param name="Layers">Number of blocks.</param>
/// <param name="Heads">Attention heads (must divide <paramref name="DModel"/>).</param>
public sealed record GptConfig(int Vocabulary, int Context = 128, int DModel = 128, int Layers = 4, int Heads = 4);

/// <summary>One pre-LN transformer block: x + attn(LN₁(x)), then x + MLP(LN₂(x)) with an exact-GELU MLP d → 4d → d.</summary>
public sealed class GptBlock : Module
{
    internal GptBlock(ParameterRegistry registry, string prefix, GptConfig config)
        : base(registry, prefix)
    {
        var d = config.DModel;
        Heads = config.Heads;
        Ln1 = new LayerNorm(registry, Name("ln1"), d);
        Qkv = new Linear(registry, Name("attn.qkv"), d, 3 * d, true, InitScheme.Gpt);
        Proj = new Linear(registry, Name("attn.proj"), d, d, true, InitScheme.Gpt);
        Ln2 = new LayerNorm(registry, Name("ln2"), d);
        Fc = new Linear(registry, Name("fc"), d, 4 * d, true, InitScheme.Gpt);
        FcOut = new Linear(registry, Name("fc_out"), 4 * d, d, true, InitScheme.Gpt);
    }

    /// <summary>Gets the number of attention heads.</summary>
    public int Heads { get; }

    /// <summary>Gets the first LayerNorm.</summary>
    public LayerNorm Ln1 { get; }

    /// <summary>Gets the fused q/k/v projection.</summary>
    public Linear Qkv { get; }

    /// <summary>Gets the attention output projection.</summary>
    public Linear Proj { get; }

    /// <summary>Gets the second LayerNorm.</summary>
    public LayerNorm Ln2 { get; }

    /// <summary>Gets the MLP's expanding layer.</summary>
    public Linear Fc { get; }

    /// <summary>Gets the MLP's contracting layer.</summary>
    public Linear FcOut { get; }

    /// <summary>Applies the block.</summary>
    /// <param name="tape">The tape.</param>
    /// <param name="x">Activations [B, T, d].</param>
    /// <returns>The block's output [B, T, d].</returns>
    public Tensor Forward(Tape tape, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(tape);
        var h = Ln1.Forward(tape, x);
        h = Qkv.Forward(tape, h);
        h = tape.CausalSelfAttention(h, Heads);
        h = Proj.Forward(tape, h);
        x = tape.Add(x, h);
        h = Ln2.Forward(tape, x);
        h = Fc.Forward(tape, h, Activation.Gelu);
        h = FcOut.Forward(tape, h);
        return tape.Add(x, h);
    }
}

/// <summary>
/// The decoder-only character GPT of bench_gpt.py: token + learned position embeddings, pre-LN blocks with causal
/// multi-head attention (fused QKV with bias) and an exact-GELU MLP, a final LayerNorm and an LM head tied to the
/// token embedding (no bias). Parameter names match its <c>state_dict</c> (<c>tok.weight</c>, <c>pos.weight</c>,
/// <c>blocks.0.attn.qkv.weight</c>, …, <c>ln_f.bias</c>); the tied <c>head.weight</c> is the token table.
/// </summary>
public sealed class Gpt : Model
{
    private readonly int[] _positions;
    private readonly GptBlock[] _blocks;

    /// <summary>Creates the model with GPT-2 initialisation (N(0, 0.02) weights, zero biases) from a seeded generator.</summary>
    /// <param name="config">The size.</param>
    /// <param name="seed">The initialisation seed.</param>
    public Gpt(GptConfig config, int seed = 0)
        : base(new ParameterRegistry())
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(config.Vocabulary);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(config.Context);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(config.Layers);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(config.Heads);
        if (config.DModel <= 0 || config.DModel % config.Heads != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(config), config.DModel, $"DModel must be a positive multiple of Heads ({config.Heads}).");
        }

        Config = config;
        Tok = new Embedding(Registry, "tok", config.Vocabulary, config.DModel, InitScheme.Gpt);
        Pos = new Embedding(Registry, "pos", config.Context, config.DModel, InitScheme.Gpt);
        var blocks = new GptBlock[config.Layers];
        for (var i = 0; i < blocks.Length; i++)
        {
            blocks[i] = new GptBlock(Registry, "blocks." + i.ToString(System.Globalization.CultureInfo.InvariantCulture), config);
        }

        Blocks = blocks;
        _blocks = blocks;
        LnF = new LayerNorm(Registry, "ln_f", config.DModel);
        Registry.Complete(seed);
        _positions = new int[config.Context];
        for (var i = 0; i < _positions.Length; i++)
        {
            _positions[i] = i;
        }
    }

    /// <summary>Gets the size.</summary>
    public GptConfig Config { get; }

    /// <inheritdoc/>
    public override int Classes => Config.Vocabulary;

    /// <summary>Gets the token embedding (also the LM head's weight).</summary>
    public Embedding Tok { get; }

    /// <summary>Gets the position embedding.</summary>
    public Embedding Pos { get; }

    /// <summary>Gets the blocks.</summary>
    public IReadOnlyList<GptBlock> Blocks { get; }

    /// <summary>Gets the final LayerNorm.</summary>
    public LayerNorm LnF { get; }

    /// <inheritdoc/>
    public override Tensor Forward(Tape tape, Batch batch)
    {
        ArgumentNullException.ThrowIfNull(tape);
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.TokensPerSample == 0 || batch.TargetsPerSample != batch.TokensPerSample)
        {
            throw new ShapeMismatchException($"A GPT batch needs tokens and one target per token; got {batch.TokensPerSample} tokens and {batch.TargetsPerSample} targets per sample.");
        }

        if (batch.Count <= 0 || batch.Count > batch.Capacity)
        {
            throw new ArgumentOutOfRangeException(nameof(batch), batch.Count, "The batch must hold between 1 and Capacity samples.");
        }

        var logits = Forward(tape, batch.Tokens, 0, batch.Count, batch.TokensPerSample);
        return tape.Reshape(logits, batch.Count * batch.TokensPerSample, Config.Vocabulary);
    }

    /// <summary>Computes next-token logits.</summary>
    /// <param name="tape">The tape.</param>
    /// <param name="tokens">Token ids, <paramref name="batch"/>×<paramref name="time"/> of them from <paramref name="offset"/>.</param>
    /// <param name="offset">Index of the first id.</param>
    /// <param name="batch">Sequences.</param>
    /// <param name="time">Sequence length (≤ context).</param>
    /// <returns>Logits [batch, time, vocabulary].</returns>
    public Tensor Forward(Tape tape, int[] tokens, int offset, int batch, int time)
    {
        ArgumentNullException.ThrowIfNull(tape);
        ArgumentNullException.ThrowIfNull(tokens);
        if (time <= 0 || time > Config.Context)
        {
            throw new ArgumentOutOfRangeException(nameof(time), time, $"Sequence length must be in [1, {Config.Context}].");
        }

        var x = Tok.Forward(tape, tokens, offset, batch, time);
        var p = Pos.Forward(tape, _positions, 0, time);
        x = tape.Add(x, p);
        for (var i = 0; i < _blocks.Length; i++)
        {
            x = _blocks[i].Forward(tape, x);
        }

        x = LnF.Forward(tape, x);
        return tape.Linear(x, Tok.Weight, null);
    }

    /// <inheritdoc/>
    protected override bool IsTiedAlias(string name) => name == "head.weight";
}
