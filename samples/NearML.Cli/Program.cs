// `nearml`: the NearML operator CLI. Each verb group lives in Commands/<Name>Command.cs and is added here.
// Exit codes (docs/operator-guide.md): 0 success / verified, 1 refused (verification failed, runtime fault), 2 bad input.
using NearML.Cli.Commands;
using NearML.Samples;

PlainConsole.Configure();
var root = new System.CommandLine.RootCommand("NearML operator tools: ledger, settlement, job state, checkpoints and attestation evidence");
root.Subcommands.Add(LedgerCommand.Create());
root.Subcommands.Add(SettleCommand.Create());
root.Subcommands.Add(JobCommand.Create());
root.Subcommands.Add(CheckpointCommand.Create());
root.Subcommands.Add(AttestCommand.Create());
return await SampleCommandLine.RunAsync(root, args).ConfigureAwait(false);
