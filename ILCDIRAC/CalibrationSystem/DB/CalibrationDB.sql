-- Schema of the CalibrationDB. CalibrationDB.py runs these statements at start-up, so every
-- table is created if it does not exist; an administrator may also source this file.
USE CalibrationDB;

-- One row per calibration: its owner, what it was created with and where it stands now.
CREATE TABLE IF NOT EXISTS Calibrations (
  CalibrationID INT UNSIGNED NOT NULL AUTO_INCREMENT,
  Owner VARCHAR(128) NOT NULL,
  OwnerGroup VARCHAR(128) NOT NULL,
  OwnerDN VARCHAR(512) NOT NULL,
  Status VARCHAR(16) NOT NULL DEFAULT 'Running',
  StatusMessage VARCHAR(2048) NOT NULL DEFAULT '',
  SoftwareVersion VARCHAR(128) NOT NULL,
  NumberOfJobs INT UNSIGNED NOT NULL,
  Settings MEDIUMTEXT NOT NULL,
  InputFiles MEDIUMTEXT NOT NULL,
  EventsPerFile TEXT NOT NULL,
  SteeringFile MEDIUMBLOB NOT NULL,
  PhotonTrainingSettings MEDIUMBLOB NULL,  -- the PandoraSettings of the photon training, if stage 2 runs
  Stage TINYINT UNSIGNED NOT NULL,
  Phase TINYINT UNSIGNED NOT NULL,
  Step INT UNSIGNED NOT NULL DEFAULT 0,
  PhaseIteration INT UNSIGNED NOT NULL DEFAULT 0,
  Parameters MEDIUMTEXT NOT NULL,
  OutputPath VARCHAR(1024) NOT NULL DEFAULT '',
  OutputSE VARCHAR(128) NOT NULL DEFAULT '',
  ResultsCopied TINYINT(1) NOT NULL DEFAULT 0,
  WorkerCredentialHash CHAR(64) NOT NULL DEFAULT '',
  CreationTime DATETIME NOT NULL,
  LastUpdate DATETIME NOT NULL,
  EndTime DATETIME NULL,
  PRIMARY KEY (CalibrationID),
  INDEX (Owner, OwnerGroup),
  INDEX (Status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One row per worker: the events it reprocesses at every step, fixed at creation.
CREATE TABLE IF NOT EXISTS Workers (
  CalibrationID INT UNSIGNED NOT NULL,
  WorkerID INT UNSIGNED NOT NULL,
  InputData MEDIUMTEXT NOT NULL,
  PRIMARY KEY (CalibrationID, WorkerID),
  FOREIGN KEY (CalibrationID) REFERENCES Calibrations (CalibrationID) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Every job submitted for a worker; the one with the highest AttemptID is the worker's job.
CREATE TABLE IF NOT EXISTS JobAttempts (
  AttemptID BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  CalibrationID INT UNSIGNED NOT NULL,
  WorkerID INT UNSIGNED NOT NULL,
  Backend VARCHAR(32) NOT NULL,
  BackendJobID VARCHAR(255) NULL,
  Status VARCHAR(16) NOT NULL,
  StatusMessage VARCHAR(1024) NOT NULL DEFAULT '',
  SubmissionTime DATETIME NOT NULL,
  LastUpdate DATETIME NOT NULL,
  PRIMARY KEY (AttemptID),
  INDEX (CalibrationID, WorkerID),
  INDEX (Status),
  FOREIGN KEY (CalibrationID) REFERENCES Calibrations (CalibrationID) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- What each worker reported for a step; a second upload for the same step is a no-op.
CREATE TABLE IF NOT EXISTS StepResults (
  CalibrationID INT UNSIGNED NOT NULL,
  Step INT UNSIGNED NOT NULL,
  WorkerID INT UNSIGNED NOT NULL,
  Stage TINYINT UNSIGNED NOT NULL,
  Phase TINYINT UNSIGNED NOT NULL,
  Content MEDIUMBLOB NOT NULL,
  ReceivedTime DATETIME NOT NULL,
  PRIMARY KEY (CalibrationID, Step, WorkerID),
  FOREIGN KEY (CalibrationID) REFERENCES Calibrations (CalibrationID) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The history: the constants each step ran with, and once analysed its metrics and outcome, and
-- until they are drawn its plots (drawn after the next step has started; the agent draws any left).
CREATE TABLE IF NOT EXISTS Steps (
  CalibrationID INT UNSIGNED NOT NULL,
  Step INT UNSIGNED NOT NULL,
  Stage TINYINT UNSIGNED NOT NULL,
  Phase TINYINT UNSIGNED NOT NULL,
  PhaseIteration INT UNSIGNED NOT NULL,
  Parameters MEDIUMTEXT NOT NULL,
  StartTime DATETIME NOT NULL,
  EndTime DATETIME NULL,
  NumberOfResults INT UNSIGNED NULL,
  Converged TINYINT(1) NULL,
  Metrics MEDIUMTEXT NULL,
  PendingPlots MEDIUMBLOB NULL,  -- Procedure.outcome.encode_plots of the plots not drawn yet
  PRIMARY KEY (CalibrationID, Step),
  FOREIGN KEY (CalibrationID) REFERENCES Calibrations (CalibrationID) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Files of a calibration's result: plots of its steps, the merged photon likelihood, and the
-- user's steering file when the calibration added to it (steeringFile.xml_INPUT).
CREATE TABLE IF NOT EXISTS CalibrationFiles (
  CalibrationID INT UNSIGNED NOT NULL,
  Name VARCHAR(255) NOT NULL,
  Step INT UNSIGNED NOT NULL,
  Content LONGBLOB NOT NULL,
  PRIMARY KEY (CalibrationID, Name),
  FOREIGN KEY (CalibrationID) REFERENCES Calibrations (CalibrationID) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- A log of what happened to each calibration, for users and administrators.
CREATE TABLE IF NOT EXISTS CalibrationEvents (
  EventID BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  CalibrationID INT UNSIGNED NOT NULL,
  EventTime DATETIME(3) NOT NULL,
  Source VARCHAR(32) NOT NULL,
  Message VARCHAR(2048) NOT NULL,
  PRIMARY KEY (EventID),
  INDEX (CalibrationID),
  FOREIGN KEY (CalibrationID) REFERENCES Calibrations (CalibrationID) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
